"""The validators' cases: a labelled dataset read for ``bench``, one case through the real
pipeline (:func:`run_case`), and the in-process loop over them (:func:`run_local`).

:func:`run_case` is a plain function of the warm :class:`Runtime` and one case, returning a small
picklable :class:`CaseOutcome`, so that another loop (worker processes, a cluster) can map it over
the cases the same way :func:`run_local` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from lvo_triage.errors import DatasetError
from lvo_triage.labels import CaseKind, LabelledCase, read_labels
from lvo_triage.pipeline import Runtime, triage_path
from lvo_triage.result import Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseOutcome:
    """What one case gave: its labels, the pipeline's answer and the stage timings.

    ``status`` is a :class:`Status` value (``ok``, ``not_analyzable``, ``error``); ``reason`` says
    why for anything but ``ok``. ``side`` is the predicted side, given only when an LVO is
    suspected (as in the result document); ``asymmetry`` and ``asymmetry_side`` are the
    non-learned baseline's score and the hemisphere with fewer vessels.
    """

    case_id: str
    lvo: bool
    side_label: str | None
    site_label: str | None
    status: str
    reason: str | None = None
    probability: float | None = None
    lvo_suspected: bool | None = None
    side: str | None = None
    asymmetry: float | None = None
    asymmetry_side: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def analysable(self) -> bool:
        return self.status == Status.OK.value


def read_dataset(root: Path, *, limit: int | None = None) -> list[LabelledCase]:
    """The cases of the labelled dataset ``root`` (CONTRACT.md), in the order of labels.csv, the
    first ``limit`` of them when given. Every case must be a DICOM folder: ``bench`` measures the
    DICOM pipeline. ``DatasetError`` (one line) says what to fix."""
    if limit is not None and limit < 1:
        msg = f"limit must be at least 1, got {limit}"
        raise ValueError(msg)
    try:
        cases = read_labels(root)
    except DatasetError as exc:
        raise DatasetError(_one_line(str(exc))) from exc
    cases = cases[:limit] if limit is not None else cases
    nifti = [case for case in cases if case.kind is CaseKind.NIFTI]
    if nifti:
        first = nifti[0]
        msg = (
            f"case {first.case_id!r} is a NIfTI file ({first.path.name}), and "
            f"{len(nifti) - 1} more: bench runs the DICOM pipeline, so give each case as a "
            "DICOM folder <case_id>/"
        )
        raise DatasetError(msg)
    return cases


def _one_line(text: str) -> str:
    """A multi-line problem list of ``read_labels`` joined into one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) <= 1:
        return text.strip()
    return f"{lines[0]} {'; '.join(lines[1:])}"


def run_case(engine: Runtime, case: LabelledCase) -> CaseOutcome:
    """Triage one case folder with the warm ``engine``. Never raises for a bad case: an input the
    pipeline cannot judge is ``not_analyzable`` with its reason, anything else ``error``."""
    try:
        results = triage_path(engine, case.path)
    except Exception as exc:  # one bad case must not stop the benchmark: it is counted
        log.exception("internal failure on case %r", case.case_id)
        reason = f"internal error ({type(exc).__name__}): {exc}"
        return failed_outcome(case, Status.ERROR, reason)
    if len(results) != 1:
        reason = (
            f"the case folder holds {len(results)} studies: a case must hold exactly one "
            "(move the others into case folders of their own)"
        )
        return failed_outcome(case, Status.NOT_ANALYZABLE, reason)
    (result,) = results
    ok = result.status is Status.OK
    suspected = bool(result.lvo_suspected) if ok else None
    second = result.vessel_asymmetry if ok else None
    return CaseOutcome(
        case_id=case.case_id,
        lvo=case.lvo,
        side_label=case.side,
        site_label=case.site,
        status=result.status.value,
        reason=None if ok else result.reason,
        probability=result.probability if ok else None,
        lvo_suspected=suspected,
        side=result.side.value if (suspected and result.side is not None) else None,
        asymmetry=second.score if second is not None else None,
        asymmetry_side=second.hemisphere.value if second is not None else None,
        timings_ms=dict(result.timings_ms),
    )


def failed_outcome(case: LabelledCase, status: Status, reason: str) -> CaseOutcome:
    """The outcome of a case without an answer: ``status`` (not ``ok``) and why."""
    return CaseOutcome(
        case_id=case.case_id,
        lvo=case.lvo,
        side_label=case.side,
        site_label=case.site,
        status=status.value,
        reason=reason,
    )


@dataclass(frozen=True)
class LoopRun:
    """The outcomes in the order of the cases, and the loop's wall time in seconds."""

    outcomes: list[CaseOutcome]
    wall_s: float


def run_local(engine: Runtime, cases: Sequence[LabelledCase], *, progress: bool = True) -> LoopRun:
    """:func:`run_case` over ``cases`` one after the other in this process, with a progress bar
    on stderr."""
    outcomes: list[CaseOutcome] = []
    start = time.perf_counter()
    bar = tqdm(cases, desc="bench", unit="study", disable=not progress)
    for case in bar:
        outcome = run_case(engine, case)
        outcomes.append(outcome)
        failed = sum(not o.analysable for o in outcomes)
        bar.set_postfix(not_analysable=failed, refresh=False)
    return LoopRun(outcomes=outcomes, wall_s=time.perf_counter() - start)
