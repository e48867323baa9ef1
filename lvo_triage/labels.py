"""The labelled dataset of docs/contract.md ("Labelled dataset"): ``labels.csv`` and one image
per case. Torch-free: ``bench`` (the runtime) and training (``train/labelled.py``) both read it.

A dataset is a folder with ``labels.csv`` and, per case, either a DICOM folder ``<case_id>/`` or
a NIfTI volume ``<case_id>.nii.gz`` (or ``.nii``) beside it. :func:`read_labels` checks the table
and finds the images.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from lvo_triage.errors import DatasetError

LABELS = "labels.csv"
REQUIRED_COLUMNS = ("case_id", "lvo")
SIDES = ("left", "right")
SITES = ("ICA-T", "M1", "M2")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
MAX_SHOWN = 10  # problems quoted in one DatasetError


class CaseKind(StrEnum):
    DICOM = "dicom"
    NIFTI = "nifti"


@dataclass(frozen=True)
class LabelledCase:
    """One row of ``labels.csv`` and the image it names."""

    case_id: str
    lvo: bool
    side: str | None
    site: str | None
    path: Path
    kind: CaseKind


def read_labels(root: Path) -> list[LabelledCase]:
    """The cases of the dataset folder ``root``, in the order of ``labels.csv``.

    ``DatasetError`` lists every problem found (up to ``MAX_SHOWN``) with its line in the file.
    ``side`` and ``site`` are matched ignoring case and returned as ``left``/``right`` and
    ``ICA-T``/``M1``/``M2``.
    """
    root = Path(root)
    table = root / LABELS
    if not table.is_file():
        msg = (
            f"no {LABELS} in {root}: a labelled dataset is a folder with {LABELS} (columns "
            "case_id, lvo; optional side, site) and one DICOM folder or <case_id>.nii.gz per case"
        )
        raise DatasetError(msg)
    cases: list[LabelledCase] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    with table.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            msg = (
                f"{table} has no column {' or '.join(map(repr, missing))} (its header: "
                f"{', '.join(columns) or 'none'}); required: case_id, lvo; optional: side, site"
            )
            raise DatasetError(msg)
        reader.fieldnames = columns
        for row in reader:
            line = reader.line_num
            try:
                case = _parse_row(root, row)
            except ValueError as exc:
                problems.append(f"{LABELS} line {line}: {exc}")
                continue
            if case.case_id in first_line:
                problems.append(
                    f"{LABELS} line {line}: case {case.case_id!r} is listed twice "
                    f"(first on line {first_line[case.case_id]}); keep one row per case"
                )
                continue
            first_line[case.case_id] = line
            cases.append(case)
    if problems:
        raise DatasetError(_summary(problems, table))
    if not cases:
        msg = f"{table} lists no cases: add one row per case under the header"
        raise DatasetError(msg)
    return cases


def _summary(problems: list[str], table: Path) -> str:
    if len(problems) == 1:
        return problems[0]
    shown = problems[:MAX_SHOWN]
    more = len(problems) - len(shown)
    tail = [f"... and {more} more"] if more else []
    return "\n  ".join([f"{len(problems)} problems in {table}:", *shown, *tail])


def _cell(row: Mapping[str | None, Any], name: str) -> str:
    value = row.get(name)
    return value.strip() if isinstance(value, str) else ""


def _parse_row(root: Path, row: Mapping[str | None, Any]) -> LabelledCase:
    case_id = _cell(row, "case_id")
    if not case_id:
        msg = "case_id is empty"
        raise ValueError(msg)
    if case_id in (".", "..") or "/" in case_id or "\\" in case_id:
        msg = f"case_id {case_id!r} must be a plain name (of a folder or file beside {LABELS})"
        raise ValueError(msg)
    lvo_text = _cell(row, "lvo")
    if lvo_text not in ("0", "1"):
        msg = f"lvo must be 0 or 1, got {lvo_text!r}"
        raise ValueError(msg)
    side_text, site_text = _cell(row, "side"), _cell(row, "site")
    side = side_text.lower() or None
    if side is not None and side not in SIDES:
        msg = f"side must be left, right or empty, got {side_text!r}"
        raise ValueError(msg)
    site = {name.upper(): name for name in SITES}.get(site_text.upper())
    if site_text and site is None:
        msg = f"site must be {', '.join(SITES)} or empty, got {site_text!r}"
        raise ValueError(msg)
    if lvo_text == "0" and (side or site):
        given = f"side {side_text!r}" if side else f"site {site_text!r}"
        msg = (
            f"lvo is 0 but {given} is given: a case without occlusion has no side or site; "
            "leave them empty (or set lvo to 1)"
        )
        raise ValueError(msg)
    path, kind = _image_of(root, case_id)
    return LabelledCase(
        case_id=case_id, lvo=lvo_text == "1", side=side, site=site, path=path, kind=kind
    )


def _image_of(root: Path, case_id: str) -> tuple[Path, CaseKind]:
    found = [(root / case_id, CaseKind.DICOM)] if (root / case_id).is_dir() else []
    found += [
        (root / f"{case_id}{suffix}", CaseKind.NIFTI)
        for suffix in NIFTI_SUFFIXES
        if (root / f"{case_id}{suffix}").is_file()
    ]
    if not found:
        msg = (
            f"case {case_id!r} has neither a folder {case_id}/ nor {case_id}.nii.gz "
            f"(or {case_id}.nii) beside {LABELS}"
        )
        raise ValueError(msg)
    if len(found) > 1:
        names = " and ".join(p.name + ("/" if k is CaseKind.DICOM else "") for p, k in found)
        msg = f"case {case_id!r} has both {names} beside {LABELS}: keep one of them"
        raise ValueError(msg)
    return found[0]
