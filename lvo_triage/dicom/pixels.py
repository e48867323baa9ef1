"""Pixel data of a series → HU, slice by slice, in parallel.

Uncompressed frames whose place in the file the header scan found are read with one ``pread``
each, without parsing the header again, in threads (reads and numpy's conversions release the
GIL). Every other file (compressed, big endian, deflated, multi-frame) is decoded by pydicom and
its pylibjpeg/pyjpegls plugins. Those codecs hold the GIL, so a series of many such files is
decoded by a pool of worker processes (spawned once, on first use, and kept). Like every spawned
pool it re-imports the caller's main script: a script that calls lvo-triage must keep its work
under ``if __name__ == "__main__":`` (the ``lvo-triage`` command and the services do); otherwise,
or inside a daemonic process (a ``multiprocessing.Pool`` worker), the pool cannot start and
decoding falls back to this process, with the same result.

Every read is a boundary: whatever damaged pixel data makes the OS, pydicom or a codec raise (or
a decoder process that dies) becomes ``NotAnalyzable`` for the series, with the reason.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from lvo_triage.dicom.instance import Instance, PixelFormat, syntax_of
from lvo_triage.errors import NotAnalyzable

Items = list[tuple[int, Instance]]
Failures = dict[int, str]  # slice index: why its pixels cannot be used
CHUNK = 16  # slices per task: large enough to amortise scheduling, small enough to balance
MIN_FILES_FOR_PROCESSES = 8  # fewer compressed files: decoding them here beats shipping them
_process_pool: ProcessPoolExecutor | None = None


def _stored_dtype(fmt: PixelFormat) -> np.dtype:
    if fmt.bits_allocated not in (8, 16):
        msg = f"{fmt.bits_allocated}-bit pixels are not supported (CT uses 16)"
        raise NotAnalyzable(msg)
    kind = "i" if fmt.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{fmt.bits_allocated // 8}")


def _to_hu(stored: np.ndarray, fmt: PixelFormat, out: np.ndarray) -> None:
    """Write ``stored * slope + intercept`` into ``out`` (float32), without a temporary."""
    if fmt.pixel_representation == 1 and fmt.bits_stored < fmt.bits_allocated:
        shift = fmt.bits_allocated - fmt.bits_stored  # sign-extend from the stored bits
        stored = (stored << shift) >> shift
    if fmt.slope != 1.0:
        np.multiply(stored, np.float32(fmt.slope), out=out, casting="unsafe")
        out += np.float32(fmt.intercept)
    else:
        np.add(stored, np.float32(fmt.intercept), out=out, casting="unsafe")


def _read_native(inst: Instance, fd: int) -> np.ndarray:
    assert inst.pixel_offset is not None
    dtype = _stored_dtype(inst.pixel)
    size = inst.rows * inst.columns * dtype.itemsize
    raw = os.pread(fd, size, inst.pixel_offset)
    if len(raw) != size:
        msg = f"the file {inst.path.name} ends inside its pixel data (copied while being written?)"
        raise NotAnalyzable(msg)
    return np.frombuffer(raw, dtype=dtype).reshape(inst.rows, inst.columns)


def _syntax_name(ds: Dataset | None) -> str:
    meta = getattr(ds, "file_meta", None)
    syntax = getattr(meta, "TransferSyntaxUID", None)
    return str(getattr(syntax, "name", syntax or "unknown encoding"))


def _decode(path: Path) -> np.ndarray:
    """All frames of one file as stored values, shape (frames, rows, cols). Whatever a damaged
    file makes pydicom or a codec raise becomes ``NotAnalyzable`` naming the file."""
    ds: Dataset | None = None
    try:
        ds = pydicom.dcmread(path, force=True)  # bare datasets too (discovery checked them)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = syntax_of(ds)
        pixels: np.ndarray = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (NotImplementedError, RuntimeError) as exc:
        msg = (
            f"the pixel data ({_syntax_name(ds)}) cannot be decoded here ({exc}); ask for the "
            "series uncompressed or losslessly compressed (JPEG lossless, JPEG-LS, JPEG 2000, RLE)"
        )
        raise NotAnalyzable(msg) from exc
    except (OSError, EOFError) as exc:
        msg = f"the file {path.name} cannot be read ({type(exc).__name__}: {exc})"
        raise NotAnalyzable(msg) from exc
    except Exception as exc:  # pydicom, numpy or a codec on damaged data: a boundary
        msg = (
            f"the pixel data of {path.name} ({_syntax_name(ds)}) is damaged and cannot be "
            f"decoded ({type(exc).__name__}); send the series again"
        )
        raise NotAnalyzable(msg) from exc
    return pixels if pixels.ndim == 3 and frames > 1 else pixels[None]


def _check_shape(pixels: np.ndarray, inst: Instance) -> None:
    if pixels.shape != (inst.rows, inst.columns):
        msg = (
            f"an image of {pixels.shape[0]}x{pixels.shape[1]} pixels in a series of "
            f"{inst.rows}x{inst.columns} images"
        )
        raise NotAnalyzable(msg)


def _native_task(items: Items, out: np.ndarray) -> Failures:
    failures: Failures = {}
    for k, inst in items:
        try:
            fd = os.open(inst.path, os.O_RDONLY)
            try:
                _to_hu(_read_native(inst, fd), inst.pixel, out[k])
            finally:
                os.close(fd)
        except NotAnalyzable as exc:
            failures[k] = exc.reason
        except Exception as exc:  # the OS or numpy on a damaged file: a boundary
            failures[k] = f"the file {inst.path.name} cannot be read ({type(exc).__name__})"
    return failures


def _decoded_task(items: Items, out: np.ndarray) -> Failures:
    try:
        frames = _decode(items[0][1].path)
    except NotAnalyzable as exc:
        return {k: exc.reason for k, _ in items}
    failures: Failures = {}
    for k, inst in items:
        index = inst.frame or 0
        try:
            if index >= frames.shape[0]:
                msg = f"frame {index + 1} missing from {inst.path.name}"
                raise NotAnalyzable(msg)
            _check_shape(frames[index], inst)
            _to_hu(frames[index], inst.pixel, out[k])
        except NotAnalyzable as exc:
            failures[k] = exc.reason
        except Exception as exc:  # numpy on pixels that do not match the header: a boundary
            failures[k] = f"the pixels of {inst.path.name} cannot be used ({type(exc).__name__})"
    return failures


def _decode_files(groups: list[Items], shape: tuple[int, int]) -> tuple[np.ndarray, Failures]:
    """Decode whole files (in a worker process): HU of their frames, in the order given, and the
    frames that failed (by that order)."""
    n = sum(len(items) for items in groups)
    out = np.empty((n, *shape), dtype=np.float32)
    failures: Failures = {}
    start = 0
    for items in groups:
        local = [(start + j, inst) for j, (_, inst) in enumerate(items)]
        failures.update(_decoded_task(local, out))
        start += len(items)
    return out, failures


def workers_available() -> int:
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)


def _processes() -> ProcessPoolExecutor | None:
    """The decoding processes (spawned, so safe beside ONNX Runtime's and torch's threads),
    started and checked on first use; None when they cannot start here: a calling script without
    ``if __name__ == "__main__":``, or a daemonic process (a ``multiprocessing.Pool`` worker),
    which may not have children."""
    global _process_pool
    if multiprocessing.current_process().daemon:
        return None
    if _process_pool is None:
        pool = ProcessPoolExecutor(
            max_workers=workers_available(),
            mp_context=multiprocessing.get_context("spawn"),
            # Ctrl-C in a terminal reaches the whole process group: the parent decides what
            # it means (finish the study in hand), the decoders carry on quietly
            initializer=signal.signal,
            initargs=(signal.SIGINT, signal.SIG_IGN),
        )
        try:
            pool.submit(os.getpid).result()
        except BrokenProcessPool:
            pool.shutdown(wait=False)
            return None
        _process_pool = pool
    return _process_pool


def _decode_in_processes(files: list[Items], out: np.ndarray) -> Failures | None:
    """Spread whole files over the worker processes, about ``CHUNK`` frames per task; the frames
    that failed, or None if the processes cannot start here, so that the caller decodes in this
    process instead. A worker
    that dies while decoding (a codec crashing on damaged data) makes the series
    ``NotAnalyzable``: decoding it here could take this process down with it."""
    global _process_pool
    batches: list[list[Items]] = [[]]
    for items in files:
        if sum(len(i) for i in batches[-1]) >= CHUNK:
            batches.append([])
        batches[-1].append(items)
    pool = _processes()
    if pool is None:
        return None
    shape = out.shape[1:]
    failures: Failures = {}
    try:
        futures = [(batch, pool.submit(_decode_files, batch, shape)) for batch in batches]
        for batch, future in futures:
            indices = [k for items in batch for k, _ in items]
            decoded, failed = future.result()
            out[indices] = decoded
            failures.update({indices[j]: reason for j, reason in failed.items()})
    except BrokenProcessPool as exc:
        _process_pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        msg = (
            "decoding the pixel data stopped a decoder process (damaged compressed data?); "
            "send the series again, or uncompressed"
        )
        raise NotAnalyzable(msg) from exc
    except NotAnalyzable:
        raise
    except Exception as exc:  # anything else a worker raised on damaged data
        msg = f"the pixel data cannot be decoded ({type(exc).__name__}); send the series again"
        raise NotAnalyzable(msg) from exc
    return failures


def read_slices(
    instances: Sequence[Instance], *, workers: int | None = None
) -> tuple[np.ndarray, Failures]:
    """HU of ``instances`` (already in slice order) as float32 of shape (n, rows, cols), and the
    slices whose pixels could not be read (damaged files), each with the reason; their planes in
    the array are undefined."""
    first = instances[0]
    sizes = {(i.rows, i.columns) for i in instances}
    if len(sizes) > 1:
        msg = f"the series mixes image sizes ({', '.join(f'{r}x{c}' for r, c in sorted(sizes))})"
        raise NotAnalyzable(msg)
    out = np.empty((len(instances), first.rows, first.columns), dtype=np.float32)
    native = [(k, i) for k, i in enumerate(instances) if i.pixel_offset is not None]
    by_file: dict[Path, Items] = defaultdict(list)
    for k, inst in enumerate(instances):
        if inst.pixel_offset is None:
            by_file[inst.path].append((k, inst))
    failures: Failures = {}
    n_workers = workers or workers_available()
    if n_workers > 1 and len(by_file) >= MIN_FILES_FOR_PROCESSES:
        decoded = _decode_in_processes(list(by_file.values()), out)
        if decoded is not None:
            failures.update(decoded)
            by_file.clear()
    tasks: list[tuple[Callable[[Items, np.ndarray], Failures], Items]] = [
        (_native_task, native[s : s + CHUNK]) for s in range(0, len(native), CHUNK)
    ]
    tasks += [(_decoded_task, items) for items in by_file.values()]
    if n_workers == 1 or len(tasks) <= 1:
        for fn, items in tasks:
            failures.update(fn(items, out))
        return out, failures
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="lvo-load") as pool:
        for future in [pool.submit(fn, items, out) for fn, items in tasks]:
            failures.update(future.result())
    return out, failures


def read_stack(instances: Sequence[Instance], *, workers: int | None = None) -> np.ndarray:
    """HU of ``instances`` (already in slice order) as float32 of shape (n, rows, cols);
    ``NotAnalyzable`` when any slice cannot be read (:func:`read_slices` tolerates that)."""
    out, failures = read_slices(instances, workers=workers)
    if failures:
        raise NotAnalyzable(failures[min(failures)])
    return out
