"""The watched folder's work areas and the moves between them.

Everything lives inside INBOX (hidden folders the scan skips), so that every move is a rename on
one filesystem, atomic: a study is never half in one place after a crash, only some of its files.

    INBOX/                  files arrive here (any nesting, any names)
    INBOX/.processing/UID/  a claimed study, being triaged (resumed after a restart)
    INBOX/.archive/UID/     its files after triage (``watch.keep_input: archive``)
    INBOX/.quarantine/      files that are not DICOM images, each with NAME.reason.txt
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

SAFE_NAME = re.compile(r"^[0-9A-Za-z.]{1,64}$")
WORK_DIRS = (".processing", ".archive", ".quarantine")


def safe_name(text: str) -> str:
    """A file or folder name from received data (a UID): used as it is when it is a plain UID,
    else a digest, so that nothing from the network can name a path (no ``..``, no ``/``)."""
    if SAFE_NAME.match(text) and text not in (".", ".."):
        return text
    return "x" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:32]


@dataclass(frozen=True)
class Inbox:
    root: Path

    @property
    def processing(self) -> Path:
        return self.root / ".processing"

    @property
    def archive(self) -> Path:
        return self.root / ".archive"

    @property
    def quarantine(self) -> Path:
        return self.root / ".quarantine"

    def create(self) -> None:
        for folder in (self.root, self.processing, self.archive, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)

    def arrivals(self) -> list[Path]:
        """Every regular file under INBOX outside the work areas, in a stable order."""
        out: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if d not in WORK_DIRS]
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".lvo-"))
            out.extend(
                Path(dirpath) / n
                for n in sorted(filenames)
                if not n.startswith(".lvo-")  # a receiver's temporary files
            )
        return out

    def claimed(self) -> list[Path]:
        """Studies claimed but not finished (after a crash): they are triaged again."""
        return sorted(p for p in self.processing.iterdir() if p.is_dir())

    def claim(self, study_uid: str, files: dict[Path, str]) -> Path:
        """Move ``files`` (path → SOPInstanceUID) into ``.processing/<study>/``; files of an
        earlier round of the same study come back from the archive, so that the study is
        triaged whole. Returns the folder."""
        folder = self.processing / safe_name(study_uid)
        folder.mkdir(parents=True, exist_ok=True)
        earlier = self.archive / safe_name(study_uid)
        if earlier.is_dir():
            for f in earlier.iterdir():
                os.replace(f, folder / f.name)
            earlier.rmdir()
        for path, sop in files.items():
            os.replace(path, _free(folder / f"{safe_name(sop)}.dcm"))
        return folder

    def finish(self, folder: Path, *, keep: str) -> None:
        """After triage: archive the study's files (merged into an earlier archive) or delete."""
        if keep == "delete":
            shutil.rmtree(folder, ignore_errors=True)
            return
        target = self.archive / folder.name
        if not target.exists():
            os.replace(folder, target)
            return
        for f in folder.iterdir():
            os.replace(f, _free(target / f.name))
        folder.rmdir()

    def put_in_quarantine(self, path: Path, reason: str) -> Path:
        """Move ``path`` to the quarantine with ``<name>.reason.txt`` beside it."""
        target = _free(self.quarantine / safe_name(path.name.replace(" ", "_")))
        os.replace(path, target)
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return target


def _free(path: Path) -> Path:
    """``path``, or ``path`` with a counter when the name is taken."""
    if not path.exists():
        return path
    for n in range(1, 100_000):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    msg = f"no free name next to {path}"
    raise FileExistsError(msg)
