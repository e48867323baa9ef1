"""Write synthetic studies: one DICOM case folder (or NIfTI file) each, plus ``labels.csv``
(docs/contract.md layout)."""

from __future__ import annotations

import csv
from pathlib import Path

from tqdm import tqdm

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.synth.dicom_writer import uid, write_series
from lvo_triage.synth.grid import acquisition_grid
from lvo_triage.synth.nifti_writer import write_nifti
from lvo_triage.synth.render import render
from lvo_triage.synth.spec import PhantomSpec, sample_spec

LABEL_COLUMNS: tuple[str, str, str, str] = ("case_id", "lvo", "side", "site")
SEED_STRIDE = 1_000_003  # case seed = master seed * stride + index: distinct for distinct masters
NIFTI_DESCRIPTION = "SYNTHETIC PHANTOM - NOT FOR CLINICAL USE"


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset with master ``seed`` (never shared across masters)."""
    if seed < 0:
        msg = f"seed must be >= 0, got {seed}"
        raise ValueError(msg)
    if not 0 <= index < SEED_STRIDE:
        msg = f"case index must be in [0, {SEED_STRIDE}), got {index}"
        raise ValueError(msg)
    return seed * SEED_STRIDE + index


def render_acquisition(spec: PhantomSpec, *, fast: bool = False) -> Volume:
    """``spec`` rendered on its acquisition grid: the volume a scanner would reconstruct."""
    shape, affine = acquisition_grid(spec, fast=fast)
    return render(spec, shape, affine)


def write_study(spec: PhantomSpec, out_dir: Path, *, fast: bool = False) -> Path:
    """Render ``spec`` on its acquisition grid and write the CTA series into ``out_dir``."""
    volume = render_acquisition(spec, fast=fast)
    out_dir = Path(out_dir)
    study_uid = uid(spec, "study")
    write_series(
        volume,
        out_dir,
        spec=spec,
        study_uid=study_uid,
        series_uid=uid(spec, study_uid, "series", "fast" if fast else "full"),
        slice_thickness_mm=None if fast else spec.slice_thickness_mm,
    )
    return out_dir


def write_study_nifti(spec: PhantomSpec, path: Path, *, fast: bool = False) -> Path:
    """The volume :func:`write_study` writes, as one NIfTI file (int16 HU, RAS+ affine)."""
    return write_nifti(render_acquisition(spec, fast=fast), path, description=NIFTI_DESCRIPTION)


def label_row(spec: PhantomSpec) -> dict[str, str]:
    return {
        "case_id": spec.case_id,
        "lvo": "1" if spec.lvo else "0",
        "side": spec.side or "",
        "site": spec.site or "",
    }


def write_dataset(
    out: Path,
    *,
    n: int,
    seed: int,
    fast: bool = False,
    balanced: bool = True,
    progress: bool = True,
    nifti: bool = False,
) -> Path:
    """Write ``n`` studies under ``out/<case_id>/`` and ``out/labels.csv``; return ``out``.

    ``nifti``: each study is ``out/<case_id>.nii.gz`` instead (the same volume and labels).
    ``balanced`` alternates lvo 1/0 (case0000 is an LVO); otherwise each label is drawn 50/50.
    """
    if n < 1:
        msg = f"n must be >= 1, got {n}"
        raise ValueError(msg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in tqdm(range(n), desc="synth", unit="study", disable=not progress):
        case_id = f"case{i:04d}"
        lvo = (i % 2 == 0) if balanced else None
        spec = sample_spec(case_seed(seed, i), case_id=case_id, lvo=lvo)
        if nifti:
            write_study_nifti(spec, out / f"{case_id}.nii.gz", fast=fast)
        else:
            write_study(spec, out / case_id, fast=fast)
        rows.append(label_row(spec))
    tmp = out / "labels.csv.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(LABEL_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out / "labels.csv")
    return out
