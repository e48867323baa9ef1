"""What the scanner adds: kernel-shaped correlated noise, skull-base streaks, the FOV circle.

Noise: filtered back projection leaves noise whose power spectrum rises with frequency (the
ramp filter) until the reconstruction kernel's apodisation cuts it: ``NPS(f) ~ f exp(-(f /
fc)^2)``, ``fc`` about 0.25 (soft), 0.35 (standard) or 0.55 (sharp) cycles/mm. White noise of
each slice is shaped in the Fourier domain by ``sqrt(NPS)``, scaled to the case's standard
deviation, and neighbouring slices are mixed when slices are thicker than their spacing.

Streaks: beam hardening between the petrous pyramids (the dark 'Hounsfield bar') and thin
alternating bright and dark lines fanning out from the petrous apices and the internal occipital
protuberance, in the scan plane, strongest at the level of the posterior fossa.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.synth_b.canvas import Canvas
from lvo_triage.synth_b.case import CaseB
from lvo_triage.synth_b.geometry import Grid
from lvo_triage.synth_b.sampling import rng_for

F32 = np.float32
CUTOFF = {"soft": 0.25, "standard": 0.35, "sharp": 0.55}  # cycles/mm
STREAK_SOURCES = ((16.0, 4.0, -31.0), (-16.0, 4.0, -31.0), (0.0, 85.0, -22.0))
STREAK_LEVEL_MM, STREAK_HALF_MM = -34.0, 14.0


def _filter(grid: Grid, kernel: str) -> tuple[np.ndarray, float]:
    """sqrt(NPS) on the rfft2 grid of a slice, and the standard deviation it gives unit noise."""
    n = grid.shape[1]
    fy = np.fft.fftfreq(n, d=grid.pixel_mm)[:, None]
    fx = np.fft.rfftfreq(n, d=grid.pixel_mm)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    fc = CUTOFF[kernel]
    power = f * np.exp(-((f / fc) ** 2))
    weight = np.full(fx.shape, 2.0)  # the other half of the spectrum mirrors these columns
    weight[:, 0] = 1.0
    if n % 2 == 0:
        weight[:, -1] = 1.0
    sd = float(np.sqrt((power * weight).sum() / (n * n)))
    return np.sqrt(power).astype(np.float32), sd


def noise(case: CaseB, grid: Grid, k0: int, k1: int) -> np.ndarray:
    """The noise of slices ``k0``..``k1`` (HU), the same for a slice whatever the slab.

    The spectrum of white noise is itself white complex noise, so each slice's spectrum is
    drawn directly (real and imaginary parts of variance n^2 / 2) and shaped, and one inverse
    transform gives the slice.
    """
    n = grid.shape[1]
    amp, sd = _filter(grid, case.acquisition.kernel)
    lo, hi = max(k0 - 1, 0), min(k1 + 1, grid.shape[0])
    spectra = np.empty((hi - lo, n, n // 2 + 1), dtype=np.complex64)
    for k in range(lo, hi):
        rng = np.random.default_rng([case.seed & 0xFFFFFFFF, k, 0x5EED])
        parts = rng.standard_normal((2, n, n // 2 + 1), dtype=np.float32)
        spectra[k - lo].real = parts[0]
        spectra[k - lo].imag = parts[1]
    spectra *= amp * F32(n / np.sqrt(2.0))
    shaped = np.fft.irfft2(spectra, s=(n, n)).astype(np.float32)
    mix = float(np.clip(grid.thickness_mm / grid.slice_mm - 1.0, 0.0, 0.5))
    if mix > 0:  # slices thicker than their spacing overlap: neighbours share noise
        padded = np.concatenate([shaped[:1], shaped, shaped[-1:]])
        shaped = (padded[1:-1] + mix * (padded[:-2] + padded[2:])) / np.sqrt(1 + 2 * mix * mix)
    shaped *= F32(case.acquisition.noise_hu * grid.noise_scale / sd)
    return shaped[k0 - lo : k0 - lo + (k1 - k0)]


def add_streaks(canvas: Canvas, case: CaseB) -> None:
    """Beam-hardening and metal-like streaks in the slices through the posterior fossa."""
    amplitude = case.acquisition.streak_hu
    if amplitude <= 0:
        return
    grid = canvas.grid
    start, di, dj, dk = grid.head_steps()
    middle = (grid.shape[1] - 1) / 2.0
    slice_z = start[2] + middle * (di[2] + dj[2]) + canvas.ks * dk[2]
    level = np.exp(-(((slice_z - STREAK_LEVEL_MM) / STREAK_HALF_MM) ** 2))
    rows = np.flatnonzero(level > 0.05)
    if len(rows) == 0:
        return
    rng = rng_for(case.seed, "streaks")
    angles = rng.uniform(0, np.pi, (len(STREAK_SOURCES), 14))
    signs = rng.choice((-1.0, 1.0), size=angles.shape) * rng.uniform(0.3, 1.0, angles.shape)
    src = grid.to_grid_mm(np.array(STREAK_SOURCES))[:, :2]
    xs = (canvas.is_ * grid.pixel_mm).astype(np.float32)[None, :]
    ys = (canvas.js * grid.pixel_mm).astype(np.float32)[:, None]
    pattern = np.zeros((canvas.size, canvas.size), dtype=np.float32)
    axis = src[0] - src[1]
    axis_len = float(np.linalg.norm(axis))
    ux, uy = axis / axis_len
    mid = 0.5 * (src[0] + src[1])
    across = np.abs((xs - mid[0]) * uy - (ys - mid[1]) * ux)
    along = np.abs((xs - mid[0]) * ux + (ys - mid[1]) * uy)
    pattern -= 0.8 * np.exp(-((across / 5.0) ** 2)) * np.clip(1.3 - along / axis_len, 0, 1)
    for s, (sx, sy) in enumerate(src):
        dx, dy = xs - F32(sx), ys - F32(sy)
        radius = np.sqrt(dx * dx + dy * dy)
        fade = np.exp(-radius / F32(80.0))
        for theta, sign in zip(angles[s], signs[s], strict=True):
            off = np.abs(dx * F32(np.sin(theta)) - dy * F32(np.cos(theta)))
            pattern += F32(0.6 * sign) * np.exp(-((off / F32(1.0)) ** 2)) * fade
    for r in rows:
        body = canvas.hu[r] > -400
        canvas.hu[r] += F32(amplitude * level[r]) * pattern * body


def reconstruction_circle(grid: Grid) -> np.ndarray:
    """True outside the circle that the reconstruction fills (the field of view)."""
    n = grid.shape[1]
    centre = (n - 1) / 2.0
    i = np.arange(n) - centre
    return (i[None, :] ** 2 + i[:, None] ** 2) > (n / 2.0) ** 2
