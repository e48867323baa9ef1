"""Labelled family-B datasets in the layout of docs/contract.md ("Labelled dataset").

``labels.csv`` has the required columns ``case_id`` and ``lvo`` and the optional ``side`` and
``site``, then family B's own: ``family`` (always ``B``), ``seed``, ``factors`` (out-of-range
factors, ``;``-separated), ``collateral_grade``, ``clot_mm``, ``phase``, ``artery_hu`` and
``encoding``. Each case is a DICOM folder ``<case_id>/`` or, with ``fmt="nifti"``, a volume
``<case_id>.nii.gz`` in RAS+ (nibabel's convention: the LPS affine with x and y negated), with
HU stored as int16 and sform/qform set to scanner coordinates.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from lvo_triage.dicom.volume_types import LPS_TO_RAS, Volume
from lvo_triage.synth_b.case import CaseB
from lvo_triage.synth_b.dicom_out import write_study_b
from lvo_triage.synth_b.render import render_case
from lvo_triage.synth_b.sampling import sample_case

FORMATS = ("dicom", "nifti")
COLUMNS: tuple[str, ...] = ("case_id", "lvo", "side", "site", "family", "seed", "factors")
COLUMNS += ("collateral_grade", "clot_mm", "phase", "artery_hu", "encoding")
DATASET_STRIDE, CASE_STRIDE = (
    100_003,
    7_919,
)  # primes: datasets of < 100_003 cases never share seeds


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index`` of the dataset with ``seed``."""
    return seed * DATASET_STRIDE + index * CASE_STRIDE + 1


def write_nifti_b(
    case: CaseB, path: Path, *, fast: bool = False, volume: Volume | None = None
) -> Path:
    """Write ``case`` as one NIfTI-1 file (int16 HU, RAS+ affine) at ``path``."""
    volume = volume if volume is not None else render_case(case, fast=fast)
    data = np.clip(np.rint(volume.hu), -32768, 32767).astype(np.int16)
    image = nib.Nifti1Image(data, LPS_TO_RAS @ volume.affine)
    image.header.set_xyzt_units("mm")
    image.set_sform(image.affine, code="scanner")
    image.set_qform(image.affine, code="scanner")
    image.header["descrip"] = b"SYNTHETIC PHANTOM B - NOT FOR CLINICAL USE"
    nib.save(image, path)
    return path


def _row(case: CaseB) -> dict[str, str]:
    occ = case.occlusion
    return {
        "case_id": case.case_id,
        "lvo": "1" if occ else "0",
        "side": occ.side if occ else "",
        "site": occ.site if occ else "",
        "family": "B",
        "seed": str(case.seed),
        "factors": ";".join(case.factors),
        "collateral_grade": occ.collateral if occ else "",
        "clot_mm": f"{occ.clot_mm:.1f}" if occ else "",
        "phase": case.contrast.phase,
        "artery_hu": f"{case.contrast.artery_hu:.0f}",
        "encoding": case.acquisition.encoding,
    }


def write_dataset_b(
    out: Path,
    *,
    n: int,
    seed: int,
    fast: bool = False,
    out_of_range: bool = False,
    fmt: str = "dicom",
    progress: bool = True,
) -> Path:
    """Write ``n`` family-B cases (about half with an LVO) and ``labels.csv`` into ``out``,
    which must be new or empty; returns ``out``."""
    out = Path(out)
    if fmt not in FORMATS:
        msg = f"fmt {fmt!r} must be one of {', '.join(FORMATS)}"
        raise ValueError(msg)
    if n < 1:
        msg = f"n must be at least 1, got {n}"
        raise ValueError(msg)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        msg = (
            f"{out} is not an empty folder: a dataset is written only into a new or empty "
            "folder, so that no old case is mixed in; choose another path or empty it first"
        )
        raise FileExistsError(msg)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in tqdm(range(n), desc="phantoms B", unit="case", disable=not progress):
        case = sample_case(
            case_seed(seed, index), out_of_range=out_of_range, case_id=f"caseB{index:04d}"
        )
        if fmt == "nifti":
            write_nifti_b(case, out / f"{case.case_id}.nii.gz", fast=fast)
        else:
            write_study_b(case, out / case.case_id, fast=fast)
        rows.append(_row(case))
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return out
