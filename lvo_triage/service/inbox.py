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
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lvo_triage.outputs.files import write_atomic

SAFE_NAME = re.compile(r"^[0-9A-Za-z.]{1,64}$")
WORK_DIRS = (".processing", ".archive", ".quarantine")


def safe_name(text: str) -> str:
    """A file or folder name from received data (a UID): used as it is when it is a plain UID,
    else a digest, so that nothing from the network can name a path (no ``..``, no ``/``)."""
    if SAFE_NAME.match(text) and not text.startswith("."):  # no "..", no ".processing"
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
        """Studies claimed but not finished (after a crash): they are triaged again. A claim that
        a crash interrupted half-way is completed first (its journal lists every file)."""
        for journal in sorted(self.processing.glob("*.claim.json")):
            self._complete(journal)
        folders = sorted(p for p in self.processing.iterdir() if p.is_dir())
        for empty in [f for f in folders if not any(f.iterdir())]:
            empty.rmdir()  # nothing was moved in before the crash: the files are still in INBOX
        return [f for f in folders if f.exists()]

    def claim(self, study_uid: str, files: dict[Path, str]) -> Path:
        """Move ``files`` (path → SOPInstanceUID) into ``.processing/<study>/``; files of an
        earlier round of the same study come back from the archive, so that the study is
        triaged whole. A journal written first (atomically) makes the claim all-or-nothing
        across a crash. Returns the folder."""
        folder = self.processing / safe_name(study_uid)  # made by _complete, after the journal
        moves = [(str(p), str(_free(folder / f"{safe_name(sop)}.dcm"))) for p, sop in files.items()]
        earlier = self.archive / safe_name(study_uid)
        if earlier.is_dir():
            moves += [(str(f), str(folder / f.name)) for f in earlier.iterdir()]
        self._journaled(folder.name, folder, moves, remove=earlier)
        return folder

    def _journaled(
        self, name: str, folder: Path, moves: list[tuple[str, str]], remove: Path
    ) -> None:
        journal = self.processing / f"{name}.claim.json"
        plan = {"folder": str(folder), "moves": moves, "remove": str(remove)}
        write_atomic(journal, json.dumps(plan))
        self._complete(journal)

    def _complete(self, journal: Path) -> None:
        """Carry out a journal's moves (again: those already done are skipped), then drop it."""
        plan = json.loads(journal.read_text(encoding="utf-8"))
        Path(plan["folder"]).mkdir(parents=True, exist_ok=True)
        for src, dst in plan["moves"]:
            if Path(src).exists() and not Path(dst).exists():
                os.replace(src, dst)
        emptied = Path(plan["remove"])
        if emptied.is_dir() and not any(emptied.iterdir()):
            emptied.rmdir()
        journal.unlink()

    def finish(self, folder: Path, *, keep: str) -> None:
        """After triage: archive the study's files (merged into an earlier archive) or delete."""
        if keep == "delete":
            shutil.rmtree(folder, ignore_errors=True)
            return
        target = self.archive / folder.name
        if not target.exists():
            os.replace(folder, target)  # one atomic rename
            return
        moves = [(str(f), str(_free(target / f.name))) for f in folder.iterdir()]
        self._journaled(folder.name, target, moves, remove=folder)

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
