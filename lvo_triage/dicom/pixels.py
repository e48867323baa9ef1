"""Pixel data of a series → HU, slice by slice, in parallel.

Uncompressed frames whose place in the file the header scan found are read with one ``pread``
each, without parsing the header again, in threads (reads and numpy's conversions release the
GIL). Every other file (compressed, big endian, deflated, multi-frame) is decoded by pydicom and
its pylibjpeg/pyjpegls plugins. Those codecs hold the GIL, so a series of many such files is
decoded by a pool of worker processes (spawned once, on first use, and kept). Like every spawned
pool it re-imports the caller's main script: a script that calls lvo-triage must keep its work
under ``if __name__ == "__main__":`` (the ``lvo-triage`` command and the services do); otherwise
the pool breaks and decoding falls back to this process, with the same result.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pydicom

from lvo_triage.dicom.instance import Instance, PixelFormat, syntax_of
from lvo_triage.errors import NotAnalyzable

Items = list[tuple[int, Instance]]
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


def _decode(path: Path) -> np.ndarray:
    """All frames of one file as stored values, shape (frames, rows, cols)."""
    try:
        ds = pydicom.dcmread(path, force=True)  # bare datasets too (discovery checked them)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = syntax_of(ds)
        pixels: np.ndarray = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        meta = getattr(ds, "file_meta", None) if "ds" in locals() else None
        syntax = getattr(meta, "TransferSyntaxUID", None)
        name = syntax.name if syntax is not None else "unknown"
        msg = (
            f"the pixel data ({name}) cannot be decoded here ({exc}); ask for the series "
            "uncompressed or losslessly compressed (JPEG lossless, JPEG-LS, JPEG 2000, RLE)"
        )
        raise NotAnalyzable(msg) from exc
    except (OSError, EOFError) as exc:
        msg = f"the file {path.name} cannot be read ({type(exc).__name__}: {exc})"
        raise NotAnalyzable(msg) from exc
    return (
        pixels if pixels.ndim == 3 and int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels[None]
    )


def _check_shape(pixels: np.ndarray, inst: Instance) -> None:
    if pixels.shape != (inst.rows, inst.columns):
        msg = (
            f"an image of {pixels.shape[0]}x{pixels.shape[1]} pixels in a series of "
            f"{inst.rows}x{inst.columns} images"
        )
        raise NotAnalyzable(msg)


def _native_task(items: Items, out: np.ndarray) -> None:
    for k, inst in items:
        fd = os.open(inst.path, os.O_RDONLY)
        try:
            _to_hu(_read_native(inst, fd), inst.pixel, out[k])
        finally:
            os.close(fd)


def _decoded_task(items: Items, out: np.ndarray) -> None:
    frames = _decode(items[0][1].path)
    for k, inst in items:
        index = inst.frame or 0
        if index >= frames.shape[0]:
            msg = f"frame {index + 1} missing from {inst.path.name}"
            raise NotAnalyzable(msg)
        _check_shape(frames[index], inst)
        _to_hu(frames[index], inst.pixel, out[k])


def _decode_files(groups: list[Items], shape: tuple[int, int]) -> np.ndarray:
    """Decode whole files (in a worker process): HU of their frames, in the order given."""
    n = sum(len(items) for items in groups)
    out = np.empty((n, *shape), dtype=np.float32)
    start = 0
    for items in groups:
        local = [(start + j, inst) for j, (_, inst) in enumerate(items)]
        _decoded_task(local, out)
        start += len(items)
    return out


def workers_available() -> int:
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)


def _processes() -> ProcessPoolExecutor:
    """The decoding processes (spawned, so safe beside ONNX Runtime's and torch's threads)."""
    global _process_pool
    if _process_pool is None:
        _process_pool = ProcessPoolExecutor(
            max_workers=workers_available(), mp_context=multiprocessing.get_context("spawn")
        )
    return _process_pool


def _decode_in_processes(files: list[Items], out: np.ndarray) -> bool:
    """Spread whole files over the worker processes, about ``CHUNK`` frames per task; False if
    the pool broke (a worker was killed), so that the caller decodes here instead."""
    global _process_pool
    batches: list[list[Items]] = [[]]
    for items in files:
        if sum(len(i) for i in batches[-1]) >= CHUNK:
            batches.append([])
        batches[-1].append(items)
    pool = _processes()
    shape = out.shape[1:]
    try:
        futures = [(batch, pool.submit(_decode_files, batch, shape)) for batch in batches]
        for batch, future in futures:
            indices = [k for items in batch for k, _ in items]
            out[indices] = future.result()
    except BrokenProcessPool:
        _process_pool = None
        return False
    return True


def read_stack(instances: Sequence[Instance], *, workers: int | None = None) -> np.ndarray:
    """HU of ``instances`` (already in slice order) as float32 of shape (n, rows, cols)."""
    first = instances[0]
    out = np.empty((len(instances), first.rows, first.columns), dtype=np.float32)
    native = [(k, i) for k, i in enumerate(instances) if i.pixel_offset is not None]
    by_file: dict[Path, Items] = defaultdict(list)
    for k, inst in enumerate(instances):
        if inst.pixel_offset is None:
            by_file[inst.path].append((k, inst))
    sizes = {(i.rows, i.columns) for i in instances}
    if len(sizes) > 1:
        msg = f"the series mixes image sizes ({', '.join(f'{r}x{c}' for r, c in sorted(sizes))})"
        raise NotAnalyzable(msg)
    n_workers = workers or workers_available()
    many = n_workers > 1 and len(by_file) >= MIN_FILES_FOR_PROCESSES
    if many and _decode_in_processes(list(by_file.values()), out):
        by_file.clear()
    tasks: list[tuple[Callable[[Items, np.ndarray], None], Items]] = [
        (_native_task, native[s : s + CHUNK]) for s in range(0, len(native), CHUNK)
    ]
    tasks += [(_decoded_task, items) for items in by_file.values()]
    if n_workers == 1 or len(tasks) <= 1:
        for fn, items in tasks:
            fn(items, out)
        return out
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="lvo-load") as pool:
        for future in [pool.submit(fn, items, out) for fn, items in tasks]:
            future.result()
    return out
