"""triage_study(): discover → select → load → preprocess → infer → decide → emit, nothing more."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from lvo_triage.asymmetry import vessel_asymmetry
from lvo_triage.config import Settings
from lvo_triage.dicom.discover import Discovery, Study, discover
from lvo_triage.dicom.select import NotAnalyzableWithSeries, Selection, select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.errors import NotAnalyzable
from lvo_triage.inference import Detector
from lvo_triage.input_ranges import measure, outside
from lvo_triage.outputs.files import write_atomic
from lvo_triage.outputs.key_image import key_image_png
from lvo_triage.outputs.result_json import study_folder, write_result
from lvo_triage.outputs.timing_log import append_timing
from lvo_triage.preprocess import Preprocessor, require_contrast
from lvo_triage.result import Side, Status, TriageResult, utc_now
from lvo_triage.timing import StageTimer

log = logging.getLogger(__name__)

MAX_SKIP_WARNINGS = 20
KEY_IMAGE = "key_image.png"


@dataclass
class Engine:
    """What stays loaded between studies: settings, the warm ONNX session, the transforms."""

    settings: Settings
    detector: Detector
    preprocessor: Preprocessor

    @classmethod
    def create(cls, settings: Settings) -> Engine:
        detector = Detector(settings=settings.model)
        return cls(settings, detector, Preprocessor(spec=detector.card.input))


def new_result(engine: Engine, started_at: str) -> TriageResult:
    return TriageResult(
        status=Status.OK,
        reason=None,
        model=engine.detector.info,
        threshold=engine.detector.threshold,
        started_at=started_at,
    )


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


def _first_usable(
    engine: Engine, selection: Selection, timer: StageTimer, result: TriageResult
) -> np.ndarray:
    """Load and preprocess the candidates, best first, until one loads and shows contrast (a
    series with missing slices or without contrast makes way for the next); the model input."""
    rules = engine.settings.selection
    for index in selection.candidates:
        series = selection.parts[index]
        try:
            with timer.stage("load"):
                volume, warnings = load_volume(
                    series,
                    max_gap_mm=rules.max_gap_mm,
                    max_volume_mb=engine.settings.limits.max_volume_mb,
                )
            with timer.stage("preprocess"):
                batch, pose = engine.preprocessor.prepare(volume)
                peak = require_contrast(batch, engine.preprocessor.spec, rules.min_arterial_hu)
        except NotAnalyzable as exc:
            selection.failed(index, exc.reason)
            continue
        result.series_considered = selection.report(index)
        result.series_instance_uid = series.uid
        result.warnings.extend(warnings)
        with timer.stage("postprocess"):
            stats = measure(volume, peak_hu=peak, pose=pose)
            for short, sentence in outside(stats, engine.detector.card.input_ranges):
                result.cautions.append(short)
                result.warnings.append(sentence)
        return batch
    first = selection.failures[selection.candidates[0]]
    raise NotAnalyzableWithSeries(first, selection.report(None))


def triage_study(
    engine: Engine, study: Study, timer: StageTimer, result: TriageResult
) -> np.ndarray | None:
    """Fill ``result`` for one study; ``NotAnalyzable`` becomes ``status: not_analyzable``.
    Returns the model input (for the key image) when the study was analysed."""
    result.study_instance_uid = study.uid
    result.accession_number = study.accession_number
    try:
        with timer.stage("select"):
            selection = select_series(study, engine.settings.selection)
        batch = _first_usable(engine, selection, timer, result)
        with timer.stage("inference"):
            prediction = engine.detector.predict(batch)
        with timer.stage("postprocess"):
            result.probability = prediction.p_lvo
            result.lvo_suspected = prediction.p_lvo >= engine.detector.threshold
            result.side = Side.LEFT if prediction.p_left >= 0.5 else Side.RIGHT
            result.site = prediction.site
            result.vessel_asymmetry = vessel_asymmetry(batch, engine.preprocessor.spec)
    except NotAnalyzableWithSeries as exc:
        result.series_considered = exc.considered
        result.status, result.reason = Status.NOT_ANALYZABLE, exc.reason
        return None
    except NotAnalyzable as exc:
        result.status, result.reason = Status.NOT_ANALYZABLE, exc.reason
        return None
    return batch


def write_key_image(
    engine: Engine, result: TriageResult, batch: np.ndarray, out: Path, source: str
) -> None:
    png = key_image_png(
        batch,
        engine.preprocessor.spec,
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
    key_image: Callable[[], None] | None = None,
    arrival_epoch: float | None = None,
) -> None:
    """Write the key image and result.json (its ``emit`` and ``total`` run up to its own
    writing) and the timing line (which has the whole emit stage). A result that replaces an
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
        if key_image is not None:
            key_image()
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
    engine: Engine, path: Path, *, out: Path | None = None, arrival_epoch: float | None = None
) -> list[TriageResult]:
    """Triage every study under ``path``; a folder without one still gets one result.
    ``arrival_epoch``: when the last file arrived (``time.time()``), for the watched folder."""
    started_at = utc_now()
    discover_timer = StageTimer()
    with discover_timer.stage("discover"):
        discovery = discover(path, limits=engine.settings.limits)
    discover_ms = discover_timer.finish()["discover"]
    log.info(
        "found %d studies in %d files (%d skipped)",
        len(discovery.studies),
        discovery.files_seen,
        len(discovery.skipped),
    )
    results: list[TriageResult] = []
    if not discovery.studies:
        timer = StageTimer(offset_ms=discover_ms)
        timer.add("discover", discover_ms)
        result = new_result(engine, started_at)
        result.status = Status.NOT_ANALYZABLE
        result.reason = no_study_reason(discovery)
        result.warnings = skip_warnings(discovery)
        emit_result(result, timer, out, str(path), arrival_epoch=arrival_epoch)
        return [result]
    for study in discovery.studies:
        timer = StageTimer(offset_ms=discover_ms)
        timer.add("discover", discover_ms)
        result = new_result(engine, started_at if not results else utc_now())
        result.warnings = skip_warnings(discovery)
        batch: np.ndarray | None = None
        try:
            batch = triage_study(engine, study, timer, result)
        except Exception as exc:  # an internal failure: reported as status error, never silent
            log.exception("internal failure while triaging a study")
            result.status = Status.ERROR
            result.reason = f"internal error ({type(exc).__name__}): {exc}"
        key_image = None
        if batch is not None and out is not None:
            key_image = partial(write_key_image, engine, result, batch, out, str(path))
        emit_result(result, timer, out, str(path), key_image, arrival_epoch)
        results.append(result)
    return results
