"""lvo-triage: large vessel occlusion triage of head CT angiograms.

Research software trained on synthetic phantoms: NOT FOR CLINICAL USE.
"""

__version__ = "0.1.0"
