"""Atomic file writes shared by every output."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pydicom


def write_atomic(
    path: Path, content: str | bytes, *, mode: int | None = None, sync_dir: bool = False
) -> None:
    """Write ``content`` to ``path`` so that readers see the old file or the new one, never half,
    through a ``.lvo-*`` temporary file in the same folder (the watched folder skips those).
    ``mode``: the file's permissions; ``sync_dir``: also make the new name durable (fsync the
    folder) before returning, as a DICOM node must before it acknowledges a C-STORE."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".lvo-{path.name}.", suffix=".part", dir=folder)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def append_line(path: Path, line: str) -> None:
    """Append one line in a single write (lines from several processes do not interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def write_dicom(path: Path, ds: pydicom.Dataset) -> None:
    """Write ``ds`` atomically as a DICOM file (preamble and file meta information)."""
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    write_atomic(path, buffer.getvalue())
