"""The execution seam: :func:`plan` finds the studies under a path (headers only) and makes a
:class:`StudyJob` of each; :func:`triage_job` runs one job through select → load → preprocess →
infer → decide → emit with the warm :class:`Runtime`. The local loop (:func:`triage_path`), the
Ray workers, ``bench`` and the watcher are maps of :func:`triage_job` over the planned jobs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pydicom

from lvo_triage.asymmetry import vessel_asymmetry
from lvo_triage.config import Settings
from lvo_triage.dicom.discover import Discovery, Study, discover
from lvo_triage.dicom.select import NotAnalyzableWithSeries, Selection, select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.errors import NotAnalyzable
from lvo_triage.inference import Detector
from lvo_triage.input_ranges import measure, outside
from lvo_triage.outputs.dicom_results import reference_header, write_dicom_results
from lvo_triage.outputs.files import write_atomic
from lvo_triage.outputs.key_image import key_image_png
from lvo_triage.outputs.result_json import study_folder, write_result
from lvo_triage.outputs.timing_log import append_timing
from lvo_triage.preprocess import Preprocessor, require_contrast
from lvo_triage.result import (
    ModelInfo,
    SeriesConsidered,
    Side,
    Status,
    TriageResult,
    VesselAsymmetry,
    utc_now,
)
from lvo_triage.timing import StageTimer

log = logging.getLogger(__name__)

MAX_SKIP_WARNINGS = 20
KEY_IMAGE = "key_image.png"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class Runtime:
    """What stays loaded between studies: settings, the warm ONNX session, the transforms."""

    settings: Settings
    detector: Detector
    preprocessor: Preprocessor

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        detector = Detector(settings=settings.model)
        return cls(settings, detector, Preprocessor(spec=detector.card.input))


@dataclass(frozen=True, kw_only=True)
class StudyJob:
    """One study found under a path, and what its result shares with the others found there.

    ``study`` is None when the path held no usable study: the job's result is then the one
    ``not_analyzable`` result of the path, with ``no_study`` as its reason. ``first``: the first
    study found (its ``started_at`` is the discovery's); ``warnings``: the discovery's skipped
    files; ``source``: the path as the user gave it (it names the output folder of a study
    without a usable UID); ``arrival_epoch``: when the study's last file arrived
    (``time.time()``, watched folders), which adds the wait to the timing line.
    """

    study: Study | None
    first: bool
    started_at: str
    discover_ms: float
    warnings: tuple[str, ...]
    out: Path | None
    source: str
    no_study: str | None = None
    arrival_epoch: float | None = None


def skip_warnings(discovery: Discovery) -> list[str]:
    shown = discovery.skipped[:MAX_SKIP_WARNINGS]
    rest = len(discovery.skipped) - len(shown)
    return shown + ([f"... and {rest} more files skipped"] if rest > 0 else [])


def no_study_reason(discovery: Discovery) -> str:
    """The reason of the one result of a folder without a usable study: how many files, and
    why the first was skipped (a damaged study says how, not just "nothing found")."""
    reason = (
        f"no DICOM study found: {discovery.files_seen} files looked at, "
        f"{len(discovery.skipped)} skipped as not usable DICOM images"
    )
    if discovery.skipped:
        reason += f" (e.g. {discovery.skipped[0].removeprefix('skipped ')})"
    return reason


def plan(
    path: Path,
    settings: Settings,
    *,
    out: Path | None = None,
    source: str | None = None,
    arrival_epoch: float | None = None,
) -> list[StudyJob]:
    """Discover the studies under ``path`` (headers only) and make a job of each; a path
    without a usable study still gets one job (whose result says why). ``source`` names the
    path in the results (default: ``path`` as given)."""
    started_at = utc_now()
    timer = StageTimer()
    with timer.stage("discover"):
        discovery = discover(path, limits=settings.limits)
    discover_ms = timer.finish()["discover"]
    log.info(
        "found %d studies in %d files (%d skipped)",
        len(discovery.studies),
        discovery.files_seen,
        len(discovery.skipped),
    )

    def job(study: Study | None, *, first: bool, no_study: str | None = None) -> StudyJob:
        return StudyJob(
            study=study,
            first=first,
            started_at=started_at,
            discover_ms=discover_ms,
            warnings=tuple(skip_warnings(discovery)),
            out=out,
            source=str(path) if source is None else source,
            no_study=no_study,
            arrival_epoch=arrival_epoch,
        )

    if not discovery.studies:
        return [job(None, first=True, no_study=no_study_reason(discovery))]
    return [job(study, first=index == 0) for index, study in enumerate(discovery.studies)]


@dataclass
class Findings:
    """What the stages found in one study; the result document is built from it once."""

    status: Status = Status.OK
    reason: str | None = None
    series_uid: str | None = None
    series_considered: list[SeriesConsidered] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cautions: list[str] = field(default_factory=list)
    probability: float | None = None
    lvo_suspected: bool | None = None
    side: Side | None = None
    site: str | None = None
    asymmetry: VesselAsymmetry | None = None
    batch: np.ndarray | None = None  # the model input (for the key image)
    header: pydicom.Dataset | None = None  # of the analysed series (for the DICOM results)


def _first_usable(
    runtime: Runtime, selection: Selection, timer: StageTimer, found: Findings
) -> np.ndarray:
    """Load and preprocess the candidates, best first, until one loads and shows contrast (a
    series with missing slices or without contrast makes way for the next); the model input."""
    rules = runtime.settings.selection
    for index in selection.candidates:
        series = selection.parts[index]
        try:
            with timer.stage("load"):
                volume, warnings = load_volume(
                    series,
                    max_gap_mm=rules.max_gap_mm,
                    max_volume_mb=runtime.settings.limits.max_volume_mb,
                )
            with timer.stage("preprocess"):
                batch, pose = runtime.preprocessor.prepare(volume)
                peak = require_contrast(batch, runtime.preprocessor.spec, rules.min_arterial_hu)
        except NotAnalyzable as exc:
            selection.failed(index, exc.reason)
            continue
        found.series_considered = selection.report(index)
        found.series_uid = series.uid
        if runtime.settings.outputs.dicom:
            found.header = reference_header([i.path for i in series.instances])
        found.warnings.extend(warnings)
        with timer.stage("postprocess"):
            stats = measure(volume, peak_hu=peak, pose=pose)
            for short, sentence in outside(stats, runtime.detector.card.input_ranges):
                found.cautions.append(short)
                found.warnings.append(sentence)
        return batch
    first = selection.failures[selection.candidates[0]]
    raise NotAnalyzableWithSeries(first, selection.report(None))


def examine(runtime: Runtime, study: Study, timer: StageTimer) -> Findings:
    """Select, load, preprocess, infer and decide for one study; ``NotAnalyzable`` becomes
    ``status: not_analyzable`` with its reason."""
    found = Findings()
    try:
        with timer.stage("select"):
            selection = select_series(study, runtime.settings.selection)
        batch = _first_usable(runtime, selection, timer, found)
        with timer.stage("inference"):
            prediction = runtime.detector.predict(batch)
        with timer.stage("postprocess"):
            found.probability = prediction.p_lvo
            found.lvo_suspected = prediction.p_lvo >= runtime.detector.threshold
            found.side = Side.LEFT if prediction.p_left >= 0.5 else Side.RIGHT
            found.site = prediction.site
            found.asymmetry = vessel_asymmetry(batch, runtime.preprocessor.spec)
            found.batch = batch
    except NotAnalyzableWithSeries as exc:
        found.series_considered = exc.considered
        found.status, found.reason = Status.NOT_ANALYZABLE, exc.reason
    except NotAnalyzable as exc:
        found.status, found.reason = Status.NOT_ANALYZABLE, exc.reason
    return found


def _job_timer(job: StudyJob) -> StageTimer:
    timer = StageTimer(offset_ms=job.discover_ms)
    timer.add("discover", job.discover_ms)
    return timer


def _started_at(job: StudyJob) -> str:
    return job.started_at if job.first else utc_now()


def triage_job(runtime: Runtime, job: StudyJob) -> TriageResult:
    """Triage the study of ``job`` and write its outputs under ``job.out`` (when given). Never
    raises for a bad study: an internal failure is a result with ``status: error``."""
    timer = _job_timer(job)
    started_at = _started_at(job)
    if job.study is None:
        found = Findings(status=Status.NOT_ANALYZABLE, reason=job.no_study)
    else:
        try:
            found = examine(runtime, job.study, timer)
        except Exception as exc:  # an internal failure: reported as status error, never silent
            log.exception("internal failure while triaging a study")
            found = Findings(
                status=Status.ERROR, reason=f"internal error ({type(exc).__name__}): {exc}"
            )
    result = TriageResult(
        status=found.status,
        reason=found.reason,
        model=runtime.detector.info,
        threshold=runtime.detector.threshold,
        started_at=started_at,
        study_instance_uid=job.study.uid if job.study is not None else None,
        series_instance_uid=found.series_uid,
        accession_number=job.study.accession_number if job.study is not None else None,
        lvo_suspected=found.lvo_suspected,
        probability=found.probability,
        side=found.side,
        site=found.site,
        vessel_asymmetry=found.asymmetry,
        series_considered=found.series_considered,
        warnings=[*job.warnings, *found.warnings],
        cautions=found.cautions,
    )
    key_image = dicom = None
    if found.batch is not None and job.out is not None:
        key_image = partial(write_key_image, runtime, result, found.batch, job.out, job.source)
    judged = result.status is not Status.ERROR  # an error has no SR (nor did it in serve)
    if runtime.settings.outputs.dicom and job.out is not None and job.study is not None and judged:
        header = found.header or reference_header(_study_images(job.study))
        dicom = partial(_write_dicom, result, header, job.out, job.source)
    emit_result(result, timer, job.out, job.source, key_image, job.arrival_epoch, dicom)
    return result


def _study_images(study: Study) -> list[Path]:
    """The CT images of ``study`` (for the header of a study without an analysed series)."""
    return [
        i.path
        for series in study.series.values()
        for i in series.instances
        if i.sop_class_uid == CT_IMAGE_STORAGE
    ]


def _write_dicom(
    result: TriageResult,
    header: pydicom.Dataset | None,
    out: Path,
    source: str,
    key_png: bytes | None,
) -> None:
    """The SR and key image of ``result`` beside its result.json (``outputs.dicom``)."""
    if header is None:
        log.error("no SR or key image for a study: none of its image files could be read again")
        return
    write_dicom_results(study_folder(out, result, source), result, header, key_png)


def failed_job(job: StudyJob, *, model: ModelInfo, threshold: float, reason: str) -> TriageResult:
    """The ``error`` result of a study that got no answer (``reason`` says why, e.g. its worker
    was lost), written under ``job.out`` like any other result."""
    result = TriageResult(
        status=Status.ERROR,
        reason=reason,
        model=model,
        threshold=threshold,
        started_at=_started_at(job),
        study_instance_uid=job.study.uid if job.study is not None else None,
        accession_number=job.study.accession_number if job.study is not None else None,
        warnings=list(job.warnings),
    )
    emit_result(result, _job_timer(job), job.out, job.source, None, job.arrival_epoch)
    return result


def error_result(runtime: Runtime, reason: str, *, study_uid: str | None = None) -> TriageResult:
    """An ``error`` result that no job made (e.g. a study the watcher set aside), not yet
    emitted."""
    return TriageResult(
        status=Status.ERROR,
        reason=reason,
        model=runtime.detector.info,
        threshold=runtime.detector.threshold,
        started_at=utc_now(),
        study_instance_uid=study_uid,
    )


def write_key_image(
    runtime: Runtime, result: TriageResult, batch: np.ndarray, out: Path, source: str
) -> bytes:
    png = key_image_png(
        batch,
        runtime.preprocessor.spec,
        lvo_suspected=result.lvo_suspected,
        side=result.side,
        probability=result.probability,
        site=result.site,
        threshold=result.threshold,
        asymmetry=result.vessel_asymmetry,
        cautions=result.cautions,
    )
    write_atomic(study_folder(out, result, source) / KEY_IMAGE, png)
    result.key_image = KEY_IMAGE
    return png


def _earlier_result(out: Path, result: TriageResult, source: str) -> str | None:
    """``finished_at`` of a result this one replaces (same study, same OUT), if any."""
    try:
        earlier = json.loads((study_folder(out, result, source) / "result.json").read_text())
    except (OSError, ValueError):
        return None
    return str(earlier.get("finished_at") or "an unknown time")


def emit_result(
    result: TriageResult,
    timer: StageTimer,
    out: Path | None,
    source: str,
    key_image: Callable[[], bytes] | None = None,
    arrival_epoch: float | None = None,
    dicom: Callable[[bytes | None], None] | None = None,
) -> None:
    """Write the key image, the DICOM results (``dicom``, given the key image's PNG) and
    result.json (its ``emit`` and ``total`` run up to its own writing), then the timing line
    (which has the whole emit stage). A result that replaces an
    earlier one of the same study says so (``supersedes``, a warning, the timing line);
    ``arrival_epoch`` (the watched folder's last file) adds the wait to the timing line."""
    start = time.perf_counter()
    result.finished_at = utc_now()
    if out is not None:
        result.supersedes = _earlier_result(out, result, source)
        if result.supersedes is not None:
            result.warnings.append(
                f"supersedes the result finished at {result.supersedes} (the study changed)"
            )
        png = key_image() if key_image is not None else None
        if dicom is not None:
            dicom(png)
        timer.add("emit", (time.perf_counter() - start) * 1000.0)
        result.timings_ms = timer.snapshot()
        start = time.perf_counter()
        write_result(out, result, source)
    timer.add("emit", (time.perf_counter() - start) * 1000.0)
    result.timings_ms = timer.finish()
    if out is not None:
        extra: dict[str, object] = {}
        if result.supersedes is not None:
            extra["supersedes"] = result.supersedes
        if arrival_epoch is not None:
            now = time.time()
            extra["arrival_to_result_ms"] = round((now - arrival_epoch) * 1000.0, 1)
            extra["wait_ms"] = round((now - arrival_epoch) * 1000.0 - result.timings_ms["total"], 1)
        append_timing(out, result, **extra)


def triage_path(
    runtime: Runtime, path: Path, *, out: Path | None = None, arrival_epoch: float | None = None
) -> list[TriageResult]:
    """Triage every study under ``path`` in this process, one after the other (the local
    loop); a folder without a study still gets one result."""
    jobs = plan(path, runtime.settings, out=out, arrival_epoch=arrival_epoch)
    return [triage_job(runtime, job) for job in jobs]
