"""Load one 400-slice 512x512 uncompressed CT series into HU: ours vs SimpleITK vs MONAI.

    python scripts/bench_load.py [--repeats 5] [--monai-repeats 3] [--no-monai] [--keep DIR]

Writes one synthetic study (the phantom with its slice spacing chosen so that the series has 400
slices) to a temporary folder, or to ``--keep DIR`` (reused when it already holds files). In this
process, each tool then loads the folder once to warm the page cache and imports, and the three
volumes are checked to agree voxel for voxel (exit 1 if not). Then ``--repeats`` interleaved rounds
time each tool with ``time.perf_counter``; medians and the ratios to our loader are printed with
their targets (ours/SimpleITK <= 0.7, ours/MONAI <= 0.2).

What each tool does, from the folder path to an array of HU values:

- ours: ``discover`` (header scan) -> ``select_series`` -> ``load_volume`` (float32).
- SimpleITK: ``ImageSeriesReader.GetGDCMSeriesIDs`` + ``GetGDCMSeriesFileNames`` (GDCM's file
  discovery and sort) + ``Execute`` + ``GetArrayViewFromImage``; its default output pixel type
  (GDCM picks int16 for these 12-bit files with intercept -1024).
- MONAI: ``LoadImage(image_only=True)`` on the folder with its default readers. Without ``itk``
  installed (as here) the reader chosen for a folder is ``PydicomReader`` (pydicom, one file at a
  time, float32, slices sorted by InstanceNumber, so the order may be reversed relative to ours);
  the script prints the one actually used. MONAI runs only ``--monai-repeats``
  (default 3) of the rounds because one load takes several seconds.

The floor is reading the raw bytes of every file (``Path.read_bytes``) with the page cache warm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from monai.transforms import LoadImage

from lvo_triage.config import SelectionSettings
from lvo_triage.dicom.discover import discover, iter_files
from lvo_triage.dicom.select import select_series
from lvo_triage.dicom.volume import load_volume
from lvo_triage.synth import PhantomSpec, sample_spec, with_slices, write_study
from lvo_triage.train.seeds import TEST_BASE

SEED = TEST_BASE + 500_000
TARGET_VS_SITK = 0.7
TARGET_VS_MONAI = 0.2
MAX_HU_DIFF = 0.5


def spec_with_slices(target: int) -> PhantomSpec:
    """The bench phantom with ``target`` slices (or one off)."""
    try:
        return with_slices(sample_spec(SEED, case_id="bench", lvo=True), target)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def load_ours(folder: Path) -> np.ndarray:
    """HU volume [i, j, k] = (cols, rows, slices), float32, through our three stages."""
    found = discover(folder)
    if len(found.studies) != 1:
        msg = f"expected one study in {folder}, found {len(found.studies)}"
        raise SystemExit(msg)
    selection = select_series(found.studies[0], SelectionSettings())
    volume, _ = load_volume(selection.series)
    return volume.hu


def load_sitk(folder: Path) -> tuple[sitk.Image, np.ndarray]:
    """The image and its array view (z, y, x) = (slices, rows, cols); the view needs the image."""
    reader = sitk.ImageSeriesReader()
    ids = reader.GetGDCMSeriesIDs(str(folder))
    if len(ids) != 1:
        msg = f"SimpleITK found {len(ids)} series in {folder}, expected 1"
        raise SystemExit(msg)
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder), ids[0]))
    image = reader.Execute()
    return image, sitk.GetArrayViewFromImage(image)


def monai_reader_name(loader: LoadImage, folder: Path) -> str:
    """The reader ``loader`` picks for ``folder`` (the same rule as ``LoadImage.__call__``)."""
    for reader in loader.readers[::-1]:
        if reader.verify_suffix((str(folder),)):
            return type(reader).__name__
    return "none"


def read_raw(files: list[Path]) -> int:
    return sum(len(f.read_bytes()) for f in files)


def timed(fn: Callable[[], Any]) -> float:
    """Milliseconds one call of ``fn`` takes (its result is dropped before returning)."""
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000.0


def compare(name: str, ours_zyx: np.ndarray, other: np.ndarray) -> tuple[float, str]:
    """Max |ours - other| in HU, trying ``other`` as is and with its slice order reversed."""
    if other.shape != ours_zyx.shape:
        msg = f"{name}: shape {other.shape} where ours is {ours_zyx.shape} (slices, rows, cols)"
        raise SystemExit(msg)
    best = (float("inf"), "")
    for how, arr in (("same slice order", other), ("slice order reversed", other[::-1])):
        diff = float(np.max(np.abs(ours_zyx - arr.astype(np.float32))))
        best = min(best, (diff, how))
        if diff == 0.0:
            break
    return best


def summary(name: str, values: list[float]) -> float:
    median = statistics.median(values)
    runs = ", ".join(f"{v:.0f}" for v in values)
    print(f"{name:>16}: median {median:8.1f} ms  (runs: {runs})")
    return median


def verdict(label: str, ratio: float, target: float) -> bool:
    ok = ratio <= target
    print(f"{label} = {ratio:.3f}  (target <= {target})  {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--monai-repeats", type=int, default=3, help="rounds that also time MONAI (default 3)"
    )
    parser.add_argument("--no-monai", action="store_true", help="leave MONAI out")
    parser.add_argument("--slices", type=int, default=400, help="slices in the series")
    parser.add_argument(
        "--keep", type=Path, default=None, help="write the study here (reused if it has files)"
    )
    args = parser.parse_args()
    if args.repeats < 1 or args.monai_repeats < 1:
        parser.error(
            f"--repeats {args.repeats} and --monai-repeats {args.monai_repeats} must be >= 1"
        )
    with tempfile.TemporaryDirectory(prefix="lvo-bench-load-") as tmp:
        status = run(args.keep if args.keep is not None else Path(tmp), args)
    sys.exit(status)


def run(folder: Path, args: argparse.Namespace) -> int:
    """Write (or reuse) the study in ``folder``, check agreement, time; the exit status."""
    use_monai = not args.no_monai
    monai_rounds = min(args.repeats, args.monai_repeats) if use_monai else 0
    if folder.is_dir() and any(folder.iterdir()):
        print(f"reusing the study in {folder}")
    else:
        spec = spec_with_slices(args.slices)
        t = time.perf_counter()
        write_study(spec, folder)
        print(
            f"wrote phantom seed {SEED} ({spec.slice_mm:.4f} mm slices) to {folder} "
            f"in {time.perf_counter() - t:.1f} s"
        )
    files = list(iter_files(folder))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"{len(files)} files, {size_mb:.0f} MB, uncompressed (explicit VR little endian)")
    print(
        f"CPU threads: os.cpu_count() = {os.cpu_count()}, "
        f"SimpleITK threads = {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()}, "
        f"SimpleITK {sitk.Version.VersionString()}"
    )

    loader = LoadImage(image_only=True) if use_monai else None
    if loader is not None:
        print(f"MONAI LoadImage reader for the folder: {monai_reader_name(loader, folder)}")

    # warm-up (page cache, imports, lazy initialisation) doubling as the agreement check
    read_raw(files)
    ours_zyx = load_ours(folder).transpose(2, 1, 0)
    image, sitk_zyx = load_sitk(folder)
    print(
        f"shapes (slices, rows, cols): ours {ours_zyx.shape} {ours_zyx.dtype}, "
        f"SimpleITK {sitk_zyx.shape} {sitk_zyx.dtype}"
    )
    checks = [("SimpleITK", *compare("SimpleITK", ours_zyx, sitk_zyx))]
    del image, sitk_zyx
    if loader is not None:
        img = loader(str(folder))
        arr = np.asarray(img)  # PydicomReader: (cols, rows, slices) like ours
        print(f"MONAI shape {tuple(arr.shape)} {arr.dtype}, compared as (slices, rows, cols)")
        checks.append(("MONAI", *compare("MONAI", ours_zyx, arr.transpose(2, 1, 0))))
        del img, arr
    agree = True
    for name, diff, how in checks:
        ok = diff <= MAX_HU_DIFF
        agree &= ok
        print(
            f"ours vs {name}: max |diff| = {diff:g} HU ({how}) "
            f"{'OK' if ok else f'DISAGREE (> {MAX_HU_DIFF} HU)'}"
        )
    del ours_zyx
    if not agree:
        return 1
    # ITK's series reader warns on every load when slice steps differ by more than its tolerance
    # (positions written with 6 significant digits do); shown once above, silenced while timing
    sitk.ProcessObject.GlobalWarningDisplayOff()
    print("SimpleITK warnings (if any, on stderr during the warm-up) are silenced while timing")

    times: dict[str, list[float]] = {"floor": [], "ours": [], "SimpleITK": [], "MONAI": []}
    for r in range(args.repeats):
        times["floor"].append(timed(lambda: read_raw(files)))
        times["ours"].append(timed(lambda: load_ours(folder)))
        times["SimpleITK"].append(timed(lambda: load_sitk(folder)))
        if r < monai_rounds:
            assert loader is not None
            times["MONAI"].append(timed(lambda: loader(str(folder))))

    print(
        f"{args.repeats} interleaved rounds"
        + (f", MONAI in the first {monai_rounds} only (slow)" if use_monai else ", MONAI skipped")
    )
    floor = summary("read raw bytes", times["floor"])
    ours = summary("ours", times["ours"])
    simple = summary("SimpleITK", times["SimpleITK"])
    print(f"ours / floor = {ours / floor:.1f}x, SimpleITK / floor = {simple / floor:.1f}x")
    verdict("ours / SimpleITK", ours / simple, TARGET_VS_SITK)
    if use_monai:
        monai = summary("MONAI", times["MONAI"])
        verdict("ours / MONAI", ours / monai, TARGET_VS_MONAI)
    return 0


if __name__ == "__main__":
    main()
