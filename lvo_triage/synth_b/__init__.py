"""Family B: a second synthetic CTA phantom, built independently of ``lvo_triage.synth``.

Research software, NOT FOR CLINICAL USE. Family B exists so that detectors can be trained on
one phantom family and tested on the other (leave-one-family-out): it shares no code and no
modelling choice with family A. Its own models: a superquadric skull with smooth bumps and a
fossa-shaped floor (``shapes``, ``head``, ``face``), an arterial tree of landmark splines
(``arteries``) whose cortical branches grow by space colonisation (``cortex``), dural sinuses
and veins (``veins``), clots and collateral refilling (``vessels``), anti-aliased tube
rasterisation (``raster``), kernel-shaped noise and skull-base streaks (``artefacts``), and its
own DICOM and NIfTI writers (``dicom_out``, ``dataset``).

    case = sample_case(7, lvo=True, side="left", site="M1")
    volume = render_case(case, fast=True)       # HU, LPS affine
    write_study_b(case, Path("study"))          # one DICOM series
    write_dataset_b(Path("set"), n=100, seed=1)  # labels.csv + one folder per case
"""

from lvo_triage.synth_b.case import SIDES, SITES, CaseB, Factor
from lvo_triage.synth_b.dataset import case_seed, write_dataset_b, write_nifti_b
from lvo_triage.synth_b.dicom_out import write_study_b
from lvo_triage.synth_b.geometry import make_grid
from lvo_triage.synth_b.render import render_case
from lvo_triage.synth_b.sampling import sample_case
from lvo_triage.synth_b.vessels import build_vessels

__all__ = [
    "SIDES",
    "SITES",
    "CaseB",
    "Factor",
    "build_vessels",
    "case_seed",
    "make_grid",
    "render_case",
    "sample_case",
    "write_dataset_b",
    "write_nifti_b",
    "write_study_b",
]
