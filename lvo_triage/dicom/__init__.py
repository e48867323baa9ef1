"""DICOM ingestion: discover studies, select the CTA series, load it as an HU volume.

Damaged files are judged by lvo-triage's own checks (``claims.py``) and reported as skipped files
or ``not_analyzable`` reasons, so pydicom is told not to validate the values it reads and its
warnings are not shown: they would flood the log with the bytes of a damaged file, and may quote
values that name a patient.
"""

import warnings as _warnings

from pydicom import config as _pydicom_config

_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE
_warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
