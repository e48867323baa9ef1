"""Scanner artefacts applied to the noise-free phantom: slice thickness, skull-base streaks, motion.

They make the detector learn occlusions rather than the clean look of one generator:
- slice thickness: a gaussian along the slice axis (grid axis 2) with FWHM = the reconstructed
  slice thickness;
- beam hardening between the petrous bones: dark streaks along lines through the petrous apices,
  strongest at the skull base and fading 12 mm above and below it, inside the head only;
- motion: a run of slices mixed half and half with a copy shifted in plane (ghosting).
"""

from __future__ import annotations

import numpy as np

from lvo_triage.synth.spec import PhantomSpec

STREAK_BAND_MM = 12.0
PETROUS_APEX_MM = (25.0, 5.0)  # |x|, y of the petrous apices in the head frame


def _gaussian_kernel(sigma_vox: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3.0 * sigma_vox)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k: np.ndarray = np.exp(-0.5 * (x / sigma_vox) ** 2)
    out: np.ndarray = (k / k.sum()).astype(np.float32)
    return out


def thickness_blur(hu: np.ndarray, thickness_mm: float, spacing_k_mm: float) -> None:
    """Blur along axis 2 in place: a slice of ``thickness_mm`` FWHM sampled every ``spacing``."""
    sigma = thickness_mm / 2.355 / spacing_k_mm
    if sigma < 0.3 or hu.shape[2] < 3:
        return
    kernel = _gaussian_kernel(sigma)
    r = len(kernel) // 2
    padded = np.concatenate(
        [np.repeat(hu[:, :, :1], r, axis=2), hu, np.repeat(hu[:, :, -1:], r, axis=2)], axis=2
    )
    out = np.zeros_like(hu)
    for j, w in enumerate(kernel):
        out += w * padded[:, :, j : j + hu.shape[2]]
    hu[...] = out


def skull_base_streaks(
    spec: PhantomSpec, hu: np.ndarray, head_xyz: np.ndarray, k: int, inside: np.ndarray
) -> None:
    """Add dark streaks to slice ``k`` (in place); ``head_xyz`` holds its voxels' head-frame
    coordinates (3, X, Y); ``inside`` marks voxels within the head."""
    base = spec.head.base_z + spec.head.base_slope * PETROUS_APEX_MM[1] + 8.0
    dz = float(np.median(head_xyz[2][inside])) - base if inside.any() else 1e9
    if abs(dz) > STREAK_BAND_MM or spec.streak_hu <= 0 or spec.streak_count <= 0:
        return
    fade = 0.5 * (1.0 + np.cos(np.pi * dz / STREAK_BAND_MM))
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 0x57EA]))
    ax, ay = PETROUS_APEX_MM
    lines = [((-ax, ay), 0.0)]  # the band joining the two apices
    for _ in range(spec.streak_count - 1):
        sx = ax if rng.random() < 0.5 else -ax
        lines.append(((sx, ay), float(rng.uniform(-np.pi / 3, np.pi / 3))))
    x, y = head_xyz[0], head_xyz[1]
    pattern = np.zeros_like(x)
    for (px, py), angle in lines:
        d = np.abs(-(x - px) * np.sin(angle) + (y - py) * np.cos(angle))
        pattern += np.exp(-((d / spec.streak_width_mm) ** 2))
    hu[:, :, k] -= np.float32(spec.streak_hu * fade) * np.minimum(pattern, 1.5) * inside


def motion(spec: PhantomSpec, hu: np.ndarray, spacing: np.ndarray) -> None:
    """Ghost a run of slices with an in-plane shifted copy (patient moved during the scan)."""
    if spec.motion_mm <= 0:
        return
    n = hu.shape[2]
    k0, k1 = int(spec.motion_from * n), int(spec.motion_to * n)
    shift = (
        round(spec.motion_mm * 0.8 / spacing[0]),
        round(spec.motion_mm * 0.6 / spacing[1]),
    )
    if k1 <= k0 or shift == (0, 0):
        return
    block = hu[:, :, k0:k1]
    block[...] = 0.5 * block + 0.5 * np.roll(block, shift, axis=(0, 1))
