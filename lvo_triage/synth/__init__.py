"""Synthetic head CTA phantoms with and without large vessel occlusion (NOT FOR CLINICAL USE).

``sample_spec`` draws one case, ``render`` rasterises it on any grid, ``write_study`` writes it as
DICOM (``write_study_nifti`` as NIfTI), ``write_dataset`` writes many plus ``labels.csv``.
"""

from lvo_triage.synth.dataset import (
    case_seed,
    render_acquisition,
    write_dataset,
    write_study,
    write_study_nifti,
)
from lvo_triage.synth.dicom_writer import write_series
from lvo_triage.synth.grid import acquisition_grid, head_to_lps, training_grid, with_slices
from lvo_triage.synth.render import render
from lvo_triage.synth.spec import SITES, PhantomSpec, sample_spec

__all__ = [
    "SITES",
    "PhantomSpec",
    "acquisition_grid",
    "case_seed",
    "head_to_lps",
    "render",
    "render_acquisition",
    "sample_spec",
    "training_grid",
    "with_slices",
    "write_dataset",
    "write_series",
    "write_study",
    "write_study_nifti",
]
