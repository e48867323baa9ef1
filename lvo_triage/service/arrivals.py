"""Files arriving in the watched folder → studies that are ready to triage.

A file is read once its size and time have stopped changing (a writer may still be busy with it);
its header is parsed then, while the rest of the study arrives. A study is ready when its CTA
series is complete by geometry (contiguous slices covering the intracranial arteries) and no file
has come for ``stable_s``, or at the latest after ``quiet_period_s`` without new files.

With several workers on one INBOX each tracks every file; a file that vanishes was claimed by
another worker (or removed) and is simply forgotten, as is a study left without files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lvo_triage.config import LimitsSettings, SelectionSettings, WatchSettings
from lvo_triage.dicom.discover import Series, Study
from lvo_triage.dicom.geometry import slice_spacing, sorted_along_normal
from lvo_triage.dicom.instance import FileHeader, read_header
from lvo_triage.dicom.select import head_foot_coverage_mm, select_series
from lvo_triage.dicom.volume import GAP_FACTOR
from lvo_triage.errors import NotAnalyzable
from lvo_triage.service.inbox import Inbox

log = logging.getLogger(__name__)


@dataclass
class _Seen:
    size: int
    mtime: float
    first_seen: float
    unchanged_polls: int = 0


@dataclass
class PendingStudy:
    uid: str
    headers: dict[Path, FileHeader] = field(default_factory=dict)
    sops: set[str] = field(default_factory=set)
    last_arrival: float = 0.0  # monotonic time the newest file was accepted
    last_arrival_wall: float = 0.0  # its time.time(), for the timing log
    not_before: float = 0.0  # monotonic: another worker held the study, try again from then
    _complete: tuple[int, bool] = (-1, False)  # (number of files, verdict) of the last check

    def complete(self, rules: SelectionSettings) -> bool:
        """:func:`complete_by_geometry`, worked out again only when files were added."""
        if self._complete[0] != len(self.headers):
            self._complete = (len(self.headers), complete_by_geometry(self.as_study(), rules))
        return self._complete[1]

    def as_study(self) -> Study:
        study = Study(uid=self.uid, accession_number=None)
        for header in self.headers.values():
            first = header.instances[0]
            series = study.series.setdefault(
                header.series_uid,
                Series(
                    uid=header.series_uid, description=header.description, modality=first.modality
                ),
            )
            series.instances.extend(header.instances)
        return study


def complete_by_geometry(study: Study, rules: SelectionSettings) -> bool:
    """True when the study's best CTA candidate has no gap and covers ``min_coverage_mm``."""
    try:
        selection = select_series(study, rules)
    except NotAnalyzable:
        return False
    series = selection.series
    try:
        _, positions = sorted_along_normal(series.instances)
    except NotAnalyzable:
        return False
    spacing = slice_spacing(positions)
    if spacing <= 0 or np.any(np.diff(positions) > GAP_FACTOR * spacing):
        return False
    return head_foot_coverage_mm(series, positions, spacing) >= rules.min_coverage_mm


class Arrivals:
    """Tracks INBOX between polls; ``known_sops`` holds what earlier rounds already claimed."""

    def __init__(
        self,
        inbox: Inbox,
        settings: WatchSettings,
        rules: SelectionSettings,
        *,
        limits: LimitsSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox, self.settings, self.rules, self.clock = inbox, settings, rules, clock
        self.limits = limits if limits is not None else LimitsSettings()
        self.seen: dict[Path, _Seen] = {}
        self.studies: dict[str, PendingStudy] = {}
        self.held: dict[Path, str] = {}  # files read into a pending study: its UID
        self.known_sops: set[str] = set()
        self.closed: set[str] = set()  # studies triaged with keep_input: delete
        for folder in inbox.archive.iterdir() if inbox.archive.is_dir() else ():
            self.known_sops.update(f.stem for f in folder.glob("*.dcm"))

    def poll(self) -> None:
        """One scan: note new and changing files, read the ones that have settled."""
        now = self.clock()
        present = set()
        for path in self.inbox.arrivals():
            present.add(path)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            seen = self.seen.get(path)
            if seen is None or (seen.size, seen.mtime) != (stat.st_size, stat.st_mtime):
                self.seen[path] = _Seen(
                    stat.st_size, stat.st_mtime, seen.first_seen if seen else now
                )
                continue
            seen.unchanged_polls += 1
            if path not in self.held:
                self._read(path, seen, now)
        for gone in set(self.seen) - present:
            del self.seen[gone]
            self._forget(gone)

    def _forget(self, path: Path) -> None:
        """Drop a file that is gone from its pending study, and a study left without files."""
        uid = self.held.pop(path, None)
        study = self.studies.get(uid) if uid is not None else None
        if study is None:
            return
        header = study.headers.pop(path, None)
        if header is not None:
            study.sops.discard(header.instances[0].sop_instance_uid)
        if not study.headers:
            del self.studies[study.uid]

    def forget_missing(self, study: PendingStudy) -> bool:
        """Forget the study's files that are gone (another worker claimed them); whether the
        study still has files."""
        for path in [p for p in study.headers if not p.exists()]:
            self.seen.pop(path, None)
            self._forget(path)
        return study.uid in self.studies

    def _read(self, path: Path, seen: _Seen, now: float) -> None:
        try:
            header = read_header(path, limits=self.limits)
        except Exception as exc:  # UnreadableFile, or the file vanished: never fatal
            if not path.exists():  # another worker claimed it: not an error
                self.seen.pop(path, None)
            elif now - seen.first_seen >= self.settings.unreadable_after_s:
                if self.inbox.put_in_quarantine(path, f"{path.name}: {exc}") is not None:
                    log.warning("quarantined an unreadable file: %s", exc)
                self.seen.pop(path, None)
            return
        sop = header.instances[0].sop_instance_uid
        if header.study_uid in self.closed:
            path.unlink(missing_ok=True)
            del self.seen[path]
            log.warning(
                "an image arrived for a study already triaged and deleted (keep_input: delete); "
                "it is ignored: use keep_input: archive to re-triage studies that grow"
            )
            return
        study = self.studies.setdefault(header.study_uid, PendingStudy(uid=header.study_uid))
        if sop in self.known_sops or sop in study.sops:
            path.unlink(missing_ok=True)  # a duplicate of an image already received
            del self.seen[path]
            log.debug("ignored a duplicate instance")
            return
        study.headers[path] = header
        study.sops.add(sop)
        self.held[path] = study.uid
        study.last_arrival, study.last_arrival_wall = now, time.time()

    def ready(self) -> list[PendingStudy]:
        """Studies to triage now, oldest arrival first."""
        now = self.clock()
        out = []
        for study in self.studies.values():
            quiet = now - study.last_arrival
            if now < study.not_before:
                continue
            if quiet >= self.settings.quiet_period_s or (
                quiet >= self.settings.stable_s and study.complete(self.rules)
            ):
                out.append(study)
        return sorted(out, key=lambda s: s.last_arrival)

    @staticmethod
    def files(study: PendingStudy) -> dict[Path, str]:
        """A pending study's files: path → SOPInstanceUID."""
        return {p: h.instances[0].sop_instance_uid for p, h in study.headers.items()}

    def take(self, study: PendingStudy) -> dict[Path, str]:
        """Stop tracking a study that was claimed: its files, path → SOPInstanceUID."""
        del self.studies[study.uid]
        files = self.files(study)
        self.known_sops.update(files.values())
        for path in files:
            self.seen.pop(path, None)
            self.held.pop(path, None)
        return files
