"""Discover studies under a path by reading DICOM headers only; junk is skipped and reported."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lvo_triage.config import LimitsSettings
from lvo_triage.dicom.instance import Instance, read_header
from lvo_triage.errors import UnreadableFile

log = logging.getLogger(__name__)

__all__ = ["Discovery", "Instance", "Series", "Study", "discover", "iter_files"]


@dataclass
class Series:
    """A series, or one ``part`` of it (an acquisition) when selection had to split it."""

    uid: str
    description: str
    modality: str
    instances: list[Instance] = field(default_factory=list)
    part: str | None = None

    @property
    def label(self) -> str:
        """The description, naming the part when this is one."""
        return f"{self.description} ({self.part})" if self.part else self.description


@dataclass
class Study:
    uid: str
    accession_number: str | None
    series: dict[str, Series] = field(default_factory=dict)


@dataclass
class Discovery:
    """What a scan found: studies in order of first appearance, and the files skipped (with why)."""

    studies: list[Study]
    skipped: list[str]
    files_seen: int


def iter_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (or ``root`` itself), in a stable order."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def discover(root: Path, *, limits: LimitsSettings | None = None) -> Discovery:
    """Group the DICOM files under ``root`` into studies and series; one copy per SOPInstanceUID.
    A file that cannot be used (junk, damaged, a header that lies: :func:`read_header`) is
    skipped with its reason; no file stops the scan."""
    studies: dict[str, Study] = {}
    skipped: list[str] = []
    seen_sops: set[str] = set()
    n = 0
    for path in iter_files(root):
        n += 1
        rel = path.relative_to(root) if path != root else Path(path.name)
        try:
            header = read_header(path, limits=limits)
        except UnreadableFile as exc:
            skipped.append(f"skipped {rel}: {exc.reason}")
            continue
        first = header.instances[0]
        if first.sop_instance_uid in seen_sops:
            skipped.append(f"skipped {rel}: duplicate of an instance already read")
            continue
        seen_sops.add(first.sop_instance_uid)
        study = studies.setdefault(
            header.study_uid, Study(uid=header.study_uid, accession_number=header.accession_number)
        )
        series = study.series.setdefault(
            header.series_uid,
            Series(uid=header.series_uid, description=header.description, modality=first.modality),
        )
        series.instances.extend(header.instances)
    for message in skipped:  # file paths can name patients: debug level only
        log.debug(message)
    return Discovery(studies=list(studies.values()), skipped=skipped, files_seen=n)
