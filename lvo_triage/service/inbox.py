"""The watched folder's work areas, the moves between them, and who holds each claim.

Everything lives inside INBOX (hidden folders the scan skips), so that every move is a rename on
one filesystem, atomic: a study is never half in one place after a crash, only some of its files.

    INBOX/                        files arrive here (any nesting, any names)
    INBOX/.processing/UID/        a claimed study, being triaged (resumed after a crash)
    INBOX/.processing/UID.owner.N the worker that holds it (its lease)
    INBOX/.processing/UID.attempts triages of it begun and not returned (the process died)
    INBOX/.archive/UID/           its files after triage (``watch.keep_input: archive``)
    INBOX/.quarantine/            files that are not DICOM images, each with NAME.reason.txt,
                                  and studies set aside (UID/ with UID.reason.txt) whose triage
                                  failed or stopped the process again and again

Several workers (processes, or machines sharing the folder) may serve one INBOX. A worker holds a
study from before its first file moves until its files are archived, by having created
``UID.owner.0`` with O_CREAT|O_EXCL, which one worker only can do. The file names the worker
(host, pid, a random id) and its modification time is a lease, renewed while the study is in hand.
A claim whose holder is dead (on this machine: its process is gone; anywhere: its lease has not
changed for ``watch.claim_lease_s``) is taken over by creating ``UID.owner.N+1``, O_EXCL again,
so that of several workers one wins; the dead holder's file is removed after that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from lvo_triage.outputs.files import write_atomic
from lvo_triage.service.owner import Owner

log = logging.getLogger(__name__)
SAFE_NAME = re.compile(r"^[0-9A-Za-z.]{1,64}$")
WORK_DIRS = (".processing", ".archive", ".quarantine")
OWNER_FILE = re.compile(r"^(?P<name>.+)\.owner\.(?P<gen>[0-9]{1,9})$")
JOURNAL = ".claim.json"
ATTEMPTS = ".attempts"
BEATS_PER_LEASE = 4  # a held claim's lease is renewed this often per watch.claim_lease_s


def safe_name(text: str) -> str:
    """A file or folder name from received data (a UID): used as it is when it is a plain UID,
    else a digest, so that nothing from the network can name a path (no ``..``, no ``/``)."""
    if SAFE_NAME.match(text) and not text.startswith("."):  # no "..", no ".processing"
        return text
    return "x" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:32]


class Inbox:
    """The folder and its work areas, as seen by one worker (``owner``). ``lease_s``: a claim
    whose lease has not changed for this long (by ``clock``) is taken for dead."""

    def __init__(
        self,
        root: Path,
        *,
        lease_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        owner: Owner | None = None,
    ) -> None:
        self.root, self.lease_s, self.clock = root, lease_s, clock
        self.owner = owner if owner is not None else Owner.this_process()
        self._held: dict[str, Path] = {}  # study folder name: our owner file
        self._mutex = threading.Lock()  # _held, between the loop and the lease thread
        self._leases: dict[Path, tuple[bytes, int, float]] = {}  # (content, mtime, seen since)

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

    def claim(self, study_uid: str, files: dict[Path, str]) -> Path | None:
        """Hold the study, then move ``files`` (path → SOPInstanceUID) into
        ``.processing/<study>/``; files of an earlier round of the same study come back from the
        archive, so that the study is triaged whole. A journal written first (atomically) makes
        the moves all-or-nothing across a crash. Returns the folder; None, having moved nothing,
        when another worker holds the study now (try again later) or has taken these files (they
        are gone; an image whose SOPInstanceUID was already claimed is deleted as a duplicate)."""
        name = safe_name(study_uid)
        if self._owner_files(name) or not self._take_over(name, {}):
            return None
        leftover = self._settle(name) is not None  # a claim a crash of an older version left
        folder, earlier = self.processing / name, self.archive / name
        moves = []
        for path, sop in files.items():
            target = f"{safe_name(sop)}.dcm"
            if (earlier / target).exists() or (folder / target).exists():
                path.unlink(missing_ok=True)  # claimed before, by this worker or another
            elif path.exists():  # else another worker took it
                moves.append((str(path), str(_free(folder / target))))
        if not moves and not leftover:
            self._release(name)
            return None
        if earlier.is_dir():
            moves += [(str(f), str(folder / f.name)) for f in earlier.iterdir()]
        self._journaled(name, folder, moves, remove=earlier)
        return folder

    def claimed(self) -> list[Path]:
        """Claims that no live worker holds (a crash, here or on another machine), now held by
        this one: their studies are triaged again. A claim that a crash interrupted half-way is
        completed first (its journal lists every file)."""
        out = []
        for name, owners in sorted(self._scan().items()):
            if name in self._held or not self._take_over(name, owners):
                continue
            folder = self._settle(name)
            if folder is None:
                self._release(name)  # nothing left to triage
            else:
                out.append(folder)
        return out

    def holds(self, folder: Path) -> bool:
        """Whether this worker still holds ``folder``'s claim (its lease may have been lost)."""
        with self._mutex:
            mine = self._held.get(folder.name)
        return mine is not None and _read(mine) is not None

    def finish(self, folder: Path, *, keep: str) -> bool:
        """After triage: archive the study's files (merged into an earlier archive) or delete
        them, and let the claim go. False, with nothing done, when another worker has taken the
        claim over meanwhile (this worker's lease ran out)."""
        if not self.holds(folder):
            log.warning(
                "another worker took over a study while this one triaged it (the lease of "
                "%.0f s ran out: was this process paused, or the folder unreachable?); it "
                "triages the study again and its result supersedes this one",
                self.lease_s,
            )
            self._release(folder.name)
            return False
        self.end_attempt(folder)
        if keep == "delete":
            shutil.rmtree(folder, ignore_errors=True)
        elif not (target := self.archive / folder.name).exists():
            os.replace(folder, target)  # one atomic rename
        else:
            moves = [(str(f), str(_free(target / f.name))) for f in folder.iterdir()]
            self._journaled(folder.name, target, moves, remove=folder)
        self._release(folder.name)
        return True

    def put_in_quarantine(self, path: Path, reason: str) -> Path | None:
        """Move ``path`` to the quarantine with ``<name>.reason.txt`` beside it; None when it is
        gone (another worker moved it first)."""
        target = _free(self.quarantine / safe_name(path.name.replace(" ", "_")))
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return None
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return target

    def begin_attempt(self, folder: Path) -> int:
        """Record, durably, that a triage of the claimed ``folder`` begins; the number of earlier
        ones that never returned (the process died in them: a crash, the OOM killer, kill -9).
        :meth:`end_attempt` clears the record when a triage returns."""
        marker = self.processing / f"{folder.name}{ATTEMPTS}"
        try:
            earlier = int(marker.read_text(encoding="utf-8").strip() or 0)
        except (OSError, ValueError):
            earlier = 0
        write_atomic(marker, f"{earlier + 1}\n", sync_dir=True)
        return earlier

    def end_attempt(self, folder: Path) -> None:
        (self.processing / f"{folder.name}{ATTEMPTS}").unlink(missing_ok=True)

    def set_aside(self, folder: Path, reason: str) -> Path:
        """Move a claimed study's files to ``.quarantine/<study>/`` with ``<study>.reason.txt``
        beside them, instead of archiving them, and let the claim go; the folder they are in."""
        target = self.quarantine / folder.name
        n = 0
        while target.exists() or target.with_name(target.name + ".reason.txt").exists():
            n += 1
            target = self.quarantine / f"{folder.name}-{n}"
        if folder.is_dir():
            os.replace(folder, target)
        else:
            target.mkdir(parents=True, exist_ok=True)
        reason_file = target.with_name(target.name + ".reason.txt")
        reason_file.write_text(reason + "\n", encoding="utf-8")
        self.end_attempt(folder)
        self._release(folder.name)
        return target

    def renew(self) -> None:
        """Renew the lease of every claim this worker holds (a claim found taken over is let go:
        :meth:`finish` says so)."""
        with self._mutex:
            for name, mine in list(self._held.items()):
                try:
                    os.utime(mine)
                except FileNotFoundError:
                    del self._held[name]

    @contextlib.contextmanager
    def renewing(self) -> Iterator[None]:
        """Renew the leases from a thread while the body runs (a triage may outlast a lease)."""
        done = threading.Event()

        def run() -> None:
            while not done.wait(self.lease_s / BEATS_PER_LEASE):
                self.renew()

        thread = threading.Thread(target=run, name="lvo-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def release_all(self) -> None:
        """Let every claim go (their folders stay): another worker takes them over at once."""
        for name in list(self._held):
            self._release(name)

    def _owner_files(self, name: str) -> dict[int, Path]:
        out = {}
        for path in self.processing.glob(f"{name}.owner.*"):
            match = OWNER_FILE.match(path.name)
            if match and match["name"] == name:
                out[int(match["gen"])] = path
        return out

    def _scan(self) -> dict[str, dict[int, Path]]:
        """Every claim in ``.processing`` (folder, journal or owner file): its owner files."""
        names: dict[str, dict[int, Path]] = {}
        for entry in os.scandir(self.processing):
            if entry.name.startswith("."):
                continue  # a temporary file
            if match := OWNER_FILE.match(entry.name):
                names.setdefault(match["name"], {})[int(match["gen"])] = Path(entry.path)
            elif entry.name.endswith(JOURNAL):
                names.setdefault(entry.name.removesuffix(JOURNAL), {})
            elif entry.is_dir():
                names.setdefault(entry.name, {})
        present = {p for owners in names.values() for p in owners.values()}
        self._leases = {p: v for p, v in self._leases.items() if p in present}
        return names

    def _take_over(self, name: str, owners: dict[int, Path]) -> bool:
        """Hold ``name`` when no live worker does; of several workers trying, one succeeds."""
        seen = {p: s for p in owners.values() if (s := _read(p)) is not None}
        if not all(self._dead(p, s) for p, s in seen.items()):
            return False
        mine = self.processing / f"{name}.owner.{max(owners, default=-1) + 1}"
        try:
            fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False  # another worker got there first
        try:
            os.write(fd, json.dumps(asdict(self.owner)).encode())
        finally:
            os.close(fd)
        with self._mutex:
            self._held[name] = mine
        now = {p: s for p in self._owner_files(name).values() if p != mine and (s := _read(p))}
        if now != seen:  # a holder came or changed meanwhile: leave it to them
            self._release(name)
            return False
        for path, (content, _) in seen.items():
            log.info(
                "took over a study from %s: its process ended or its lease ran out",
                Owner.parse(content) or "a worker that left no name",
            )
            path.unlink(missing_ok=True)
        return True

    def _dead(self, path: Path, seen: tuple[bytes, int]) -> bool:
        """A holder is dead when its process is gone (same machine) or its lease (the owner
        file's time) has not changed for ``lease_s`` while this worker looked."""
        owner = Owner.parse(seen[0])
        if owner is not None and owner.process_gone():
            return True
        now = self.clock()
        last = self._leases.get(path)
        if last is None or last[:2] != seen:
            self._leases[path] = (*seen, now)
            return False
        return now - last[2] >= self.lease_s

    def _release(self, name: str) -> None:
        with self._mutex:
            mine = self._held.pop(name, None)
            if mine is not None:
                mine.unlink(missing_ok=True)

    def _settle(self, name: str) -> Path | None:
        """Complete what a crashed holder's journal began, drop an empty folder (nothing was
        moved in before the crash: the files are still in INBOX); the folder if it has files."""
        journal = self.processing / f"{name}{JOURNAL}"
        if journal.exists():
            self._complete(journal)
        folder = self.processing / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return folder if folder.is_dir() else None

    def _journaled(
        self, name: str, folder: Path, moves: list[tuple[str, str]], remove: Path
    ) -> None:
        journal = self.processing / f"{name}{JOURNAL}"
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


def _read(path: Path) -> tuple[bytes, int] | None:
    """An owner file's content and modification time (opened, so that a network share shows
    the current ones), or None when it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, 4096), os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)


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
