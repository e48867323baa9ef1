"""Pixel data of a series → HU, slice by slice, in parallel threads.

Uncompressed frames whose place in the file the header scan found are read with one ``pread``
each, without parsing the header again; every other file (compressed, big endian, deflated,
multi-frame) is decoded by pydicom and its pylibjpeg/pyjpegls plugins. numpy's conversions and
the codecs release the GIL, so threads share the work across cores.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom

from lvo_triage.dicom.instance import Instance, PixelFormat
from lvo_triage.errors import NotAnalyzable

Items = list[tuple[int, Instance]]
CHUNK = 16  # slices per task: large enough to amortise scheduling, small enough to balance


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
        ds = pydicom.dcmread(path)
        pixels: np.ndarray = ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        meta = getattr(ds, "file_meta", None) if "ds" in locals() else None
        syntax = getattr(meta, "TransferSyntaxUID", None)
        name = syntax.name if syntax is not None else "unknown"
        msg = f"the pixel data ({name}) cannot be decoded here: {exc}"
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
    tasks: list[tuple[Callable[[Items, np.ndarray], None], Items]] = [
        (_native_task, native[s : s + CHUNK]) for s in range(0, len(native), CHUNK)
    ]
    tasks += [(_decoded_task, items) for items in by_file.values()]
    n_workers = workers or min(8, os.cpu_count() or 1)
    if n_workers == 1 or len(tasks) == 1:
        for fn, items in tasks:
            fn(items, out)
        return out
    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="lvo-load") as pool:
        for future in [pool.submit(fn, items, out) for fn, items in tasks]:
            future.result()
    return out
