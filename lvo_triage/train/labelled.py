"""Researchers' labelled datasets (docs/contract.md, "Labelled dataset") → training arrays.

A dataset is a folder with ``labels.csv`` and, per case, either a DICOM folder ``<case_id>/`` or
a NIfTI volume ``<case_id>.nii.gz`` (or ``.nii``) beside it. :func:`lvo_triage.labels.read_labels`
checks the table and finds the images, :func:`load_case` reads one case as an HU :class:`Volume`
(DICOM through the inference loader, NIfTI through nibabel with its RAS+ affine turned into LPS),
and :func:`build_labelled_arrays` puts every case through the inference :class:`Preprocessor` into
uint8 :class:`CaseArrays`, cached per case by MONAI's ``PersistentDataset``. An image file that
changes (size or modification time) is processed again; after changing the loading or
preprocessing code, delete the cache folder (or bump ``CACHE_VERSION``).
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from monai.data import PersistentDataset
from monai.transforms import MapTransform
from nibabel.filebasedimages import ImageFileError
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from lvo_triage.config import SelectionSettings
from lvo_triage.dicom.discover import discover, iter_files
from lvo_triage.dicom.select import select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.dicom.volume_types import LPS_TO_RAS, Volume
from lvo_triage.errors import DatasetError, NotAnalyzable
from lvo_triage.labels import CaseKind, LabelledCase
from lvo_triage.model_card import InputSpec
from lvo_triage.preprocess import Preprocessor
from lvo_triage.train.dataset import SITE_CODES, CaseArrays

log = logging.getLogger(__name__)

SIDE_CODES = {"left": 1, "right": 0, None: -1}  # -1: unknown, ignored by the side loss
MAX_AIR_HU = -500.0  # a head CT has air around the head, far below this
CACHE_VERSION = 1  # part of every cache key: bump it when loading or preprocessing changes
NIFTI_ERRORS = (ImageFileError, OSError, EOFError, zlib.error, ValueError)


# ---------------------------------------------------------------------------------- loading


def load_case(case: LabelledCase) -> Volume:
    """The HU volume of ``case``; ``NotAnalyzable`` (with the reason) when it cannot be read."""
    return load_image(case.path, case.kind)


def load_image(path: Path, kind: CaseKind | str) -> Volume:
    """A DICOM case folder or a NIfTI file as an HU volume with an LPS affine."""
    if CaseKind(kind) is CaseKind.DICOM:
        return _load_dicom(Path(path))
    return _load_nifti(Path(path))


def _load_dicom(folder: Path) -> Volume:
    """The inference route: one study, series selection, the first candidate that loads (the
    pipeline's ``_first_usable`` without its contrast check)."""
    discovery = discover(folder)
    if not discovery.studies:
        first = f"; {discovery.skipped[0]}" if discovery.skipped else ""
        msg = f"no DICOM images in {folder.name}/ ({discovery.files_seen} files{first})"
        raise NotAnalyzable(msg)
    if len(discovery.studies) > 1:
        msg = (
            f"{folder.name}/ holds {len(discovery.studies)} studies: a case folder must hold "
            "exactly one; move the others into case folders (and rows) of their own"
        )
        raise NotAnalyzable(msg)
    rules = SelectionSettings()
    selection = select_series(discovery.studies[0], rules)
    reasons = []
    for index in selection.candidates:
        try:
            volume, warnings = load_volume(selection.parts[index], max_gap_mm=rules.max_gap_mm)
        except NotAnalyzable as exc:
            reasons.append(exc.reason)
            continue
        for warning in warnings:
            log.debug("%s: %s", folder.name, warning)
        return volume
    raise NotAnalyzable(reasons[0])


def _load_nifti(path: Path) -> Volume:
    """nibabel's scaled voxels (scl_slope/inter applied) as HU; the affine from RAS+ to LPS."""
    try:
        image = nib.load(path)
    except NIFTI_ERRORS as exc:
        msg = f"cannot read {path.name} as NIfTI: {exc}"
        raise NotAnalyzable(msg) from exc
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
        msg = f"{path.name} is not a NIfTI image (nibabel read it as {type(image).__name__})"
        raise NotAnalyzable(msg)
    if image.get_sform(coded=True)[1] == 0 and image.get_qform(coded=True)[1] == 0:
        msg = (
            f"{path.name} has no orientation (sform_code and qform_code are 0), so the patient's "
            "left is unknown; write it with its scanner sform or qform"
        )
        raise NotAnalyzable(msg)
    try:
        hu = image.get_fdata(dtype=np.float32)
    except NIFTI_ERRORS as exc:
        msg = f"cannot read the voxels of {path.name}: {exc}"
        raise NotAnalyzable(msg) from exc
    if hu.ndim == 4 and hu.shape[3] == 1:
        hu = hu[..., 0]
    if hu.ndim != 3:
        msg = f"{path.name} has shape {hu.shape}: expected one 3D volume"
        raise NotAnalyzable(msg)
    ras = np.asarray(image.affine, dtype=np.float64)
    if not np.isfinite(ras).all() or abs(np.linalg.det(ras[:3, :3])) < 1e-9:
        msg = f"{path.name} has a degenerate affine, so distances cannot be measured"
        raise NotAnalyzable(msg)
    if not np.isfinite(hu).all():
        msg = f"{path.name} has NaN or infinite voxels"
        raise NotAnalyzable(msg)
    lowest = float(hu.min())
    if lowest > MAX_AIR_HU:
        msg = (
            f"{path.name} has no air (lowest value {lowest:.0f}): it is not in Hounsfield "
            "units, or is cropped inside the head; convert it to HU with the air around the head"
        )
        raise NotAnalyzable(msg)
    return Volume(hu=hu, affine=LPS_TO_RAS @ ras)


# ---------------------------------------------------------------------------------- arrays


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Model input in [0, 1] stored as uint8, 1/255 of the window per step (as ``dataset.py``)."""
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


class LoadPreprocessd(MapTransform):
    """Case item (``path``, ``kind``, ``case_id``; the rest only names the cache file) → the model
    input as uint8 ``x`` of shape (1, X, Y, Z). Deterministic, so ``PersistentDataset`` caches it.
    """

    def __init__(self, *, spec: InputSpec) -> None:
        super().__init__(keys=("path",))
        self.spec = spec
        self._preprocessor: Preprocessor | None = None  # built on first use: it is not picklable

    def __call__(self, data: Mapping[str, Any]) -> dict[str, Any]:
        if self._preprocessor is None:
            self._preprocessor = Preprocessor(spec=self.spec)
        volume = load_image(Path(data["path"]), data["kind"])
        return {"case_id": data["case_id"], "x": to_uint8(self._preprocessor(volume)[0])}


def _fingerprint(path: Path) -> tuple[int, int, int]:
    """Total size, newest modification time (ns) and number of the files of a case."""
    stats = [os.stat(p) for p in iter_files(path)]
    return (
        sum(s.st_size for s in stats),
        max((s.st_mtime_ns for s in stats), default=0),
        len(stats),
    )


def case_item(case: LabelledCase, spec: InputSpec) -> dict[str, Any]:
    """The data item of ``case``; PersistentDataset names its cache file by a hash of it."""
    size, mtime_ns, files = _fingerprint(case.path)
    return {
        "case_id": case.case_id,
        "path": str(case.path.resolve()),
        "kind": str(case.kind),
        "size": size,
        "mtime_ns": mtime_ns,
        "files": files,
        "spec": json.dumps(spec.to_dict(), sort_keys=True),
        "version": CACHE_VERSION,
    }


def _not_analyzable(exc: BaseException) -> str | None:
    """The reason of the ``NotAnalyzable`` that ``exc`` wraps (MONAI wraps transform errors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NotAnalyzable):
            return seen.reason
        seen = seen.__cause__ or seen.__context__
    return None


class _SkipUnreadable(Dataset[dict[str, Any]]):
    """``cached[index]`` with its index; a case that cannot be analysed becomes ``{"error":
    reason}``, which is not cached: it is tried again next time."""

    def __init__(self, cached: PersistentDataset) -> None:
        self.cached = cached

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            item = dict(self.cached[index])
        except Exception as exc:
            reason = _not_analyzable(exc)
            if reason is None:
                raise
            return {"index": index, "error": reason}
        item["index"] = index
        return item


def _as_is(item: Any) -> Any:
    """The DataLoader's collate_fn: items one by one, as they are."""
    return item


ItemMapper = Callable[[Sequence[dict[str, Any]]], Iterable[dict[str, Any]]]
"""Another engine's loop over the case items: it yields, in any order, one output per item as
:func:`preprocess_item` gives it, with ``"index"`` set to the item's position."""


def preprocess_item(
    item: Mapping[str, Any], *, spec: InputSpec, cache_dir: Path | None
) -> dict[str, Any]:
    """One case item (:func:`case_item`) through the cache, as :func:`build_labelled_arrays`
    does it: ``{"case_id", "x"}`` (read from ``cache_dir``, or loaded, preprocessed and written
    there), or ``{"error": reason}`` when the case cannot be analysed. For workers of another
    engine; ``cache_dir`` must be the same folder for all of them."""
    cached = PersistentDataset(
        data=[dict(item)], transform=LoadPreprocessd(spec=spec), cache_dir=cache_dir
    )
    out = _SkipUnreadable(cached)[0]
    del out["index"]
    return out


def build_labelled_arrays(
    cases: Sequence[LabelledCase],
    *,
    spec: InputSpec,
    cache_dir: Path | None,
    workers: int = 0,
    progress: bool = True,
    mapper: ItemMapper | None = None,
) -> CaseArrays:
    """Preprocess every case into :class:`CaseArrays` (``seeds`` = the case's index in ``cases``).

    A case that cannot be analysed is skipped with a warning naming it and the reason; the number
    skipped is logged. ``cache_dir`` keeps one file per case (``None``: no cache); ``workers``
    processes load in parallel (0: in this process), or ``mapper`` (the Ray engine's, say) runs
    :func:`preprocess_item` over the items; both give the same arrays and the same cache.
    """
    if not cases:
        msg = "no cases to build arrays from"
        raise DatasetError(msg)
    if workers < 0:
        msg = f"workers must be >= 0, got {workers}"
        raise ValueError(msg)
    items = [case_item(case, spec) for case in cases]
    outputs: Iterable[dict[str, Any]]
    if mapper is not None:
        outputs = mapper(items)
    else:
        cached = PersistentDataset(
            data=items, transform=LoadPreprocessd(spec=spec), cache_dir=cache_dir
        )
        outputs = DataLoader(
            _SkipUnreadable(cached), batch_size=None, num_workers=workers, collate_fn=_as_is
        )
    kept: list[tuple[int, np.ndarray]] = []
    skipped: list[tuple[int, str, str]] = []
    bar = tqdm(outputs, total=len(cases), desc="labelled", unit="case", disable=not progress)
    for out in bar:
        case = cases[out["index"]]
        if "error" in out:
            log.warning("skipped case %r: %s", case.case_id, out["error"])
            skipped.append((out["index"], case.case_id, out["error"]))
            continue
        kept.append((out["index"], np.asarray(out["x"], dtype=np.uint8)))
    if not kept:
        _, case_id, reason = min(skipped)  # the first in the order of the cases
        msg = f"none of the {len(cases)} cases could be analysed (first, {case_id!r}: {reason})"
        raise DatasetError(msg)
    if skipped:
        log.warning("skipped %d of %d cases; %d remain", len(skipped), len(cases), len(kept))
    kept.sort(key=lambda pair: pair[0])  # another engine's outputs come in any order
    chosen = [cases[index] for index, _ in kept]
    unsided = sum(case.lvo and case.side is None for case in chosen)
    if unsided:
        log.warning("%d LVO cases have no side: they do not train the side output", unsided)
    return CaseArrays(
        x=np.stack([x for _, x in kept]),
        lvo=np.array([int(case.lvo) for case in chosen], dtype=np.int64),
        left=np.array([SIDE_CODES[case.side] for case in chosen], dtype=np.int64),
        site=np.array([SITE_CODES[case.site] for case in chosen], dtype=np.int64),
        seeds=np.array([index for index, _ in kept], dtype=np.int64),
    )
