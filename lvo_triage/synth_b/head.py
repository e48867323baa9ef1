"""Scalp, vault and brain: the layers around the cranial cavity and what fills it.

Published ranges used: vault 5-8 mm thick with outer and inner tables of cortical bone
(700-1500 HU) around lower-density diploe; scalp 4-7 mm with a subcutaneous fat layer; CSF
0-15 HU in a subarachnoid space of 1-4 mm that widens with age (atrophy), in the sylvian and
interhemispheric fissures, the basal cisterns and the ventricles (which enlarge with age);
cortex 2.5-7 mm thick (grey matter 35-45 HU) over white matter (25-32 HU), folded into gyri of
about 10-15 mm with sulci up to ~12 mm deep; deep grey nuclei (basal ganglia, thalami).
"""

from __future__ import annotations

import numpy as np

from lvo_triage.synth_b.canvas import Canvas
from lvo_triage.synth_b.case import HeadB
from lvo_triage.synth_b.shapes import F32, Solid, floor_z, inner_distance, superellipsoid

GYRUS = F32(2 * np.pi / 13.0)  # gyral wavelength ~13 mm
TENTORIUM_HU = 48.0


def _gyri(head: HeadB, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """Two folding patterns in [-1, 1]: where the cortex is thick, and where the sulci are."""
    p1, p2, p3 = (F32(v) for v in head.gyral_phase)
    fold = np.sin(GYRUS * x + p1 + F32(0.8) * np.sin(F32(0.11) * z)) * np.sin(
        F32(0.9) * GYRUS * y + p2
    )
    sulci = np.sin(F32(0.8) * GYRUS * (y + F32(0.45) * z) + p3 + F32(1.2) * fold)
    return fold, sulci


def _inner(head: HeadB) -> Solid:
    def field(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return inner_distance(head, x, y, z)

    return field


def _below_floor(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    out: np.ndarray = floor_z(x, y) - z
    return out


def _occupancy(distance: np.ndarray, width: float) -> np.ndarray:
    out: np.ndarray = np.clip(F32(0.5) - distance / F32(width), F32(0), F32(1))
    return out


def paint_scalp_and_vault(canvas: Canvas, head: HeadB) -> None:
    """Scalp (with its fat layer and the temporalis muscles) and the bone of the vault and the
    skull base below the cranial floor (thicker there)."""
    total, scalp, w = head.skull_mm, head.scalp_mm, canvas.width
    box = canvas.everything
    x, y, z = canvas.coords(box)
    inner = canvas.cached("inner", _inner(head))
    vault = np.maximum(inner, F32(0.7) * canvas.cached("below", _below_floor))
    canvas.blend(box, _occupancy(vault - F32(total + scalp), w), head.scalp_hu)
    fat = np.abs(vault - F32(total + 0.45 * scalp)) - F32(0.2 * scalp)
    canvas.blend(box, _occupancy(fat, w), 0.7 * head.fat_hu + 0.3 * head.scalp_hu)
    for s in (1.0, -1.0):  # temporalis muscles
        canvas.ellipsoid((s * 64, -12, -2), (9, 38, 30), 52.0, 2.2)
    canvas.blend(box, _occupancy(vault - F32(total), w), head.cortical_hu)
    table = 0.3 * total
    diploe = np.abs(vault - F32(0.5 * total)) - F32(0.5 * total - table)
    texture = F32(head.diploe_hu) * (
        F32(1.0) + F32(0.25) * np.sin(F32(0.9) * x) * np.sin(F32(1.1) * y + F32(0.7) * z)
    )
    canvas.blend(box, _occupancy(diploe, w), texture)


def paint_brain(canvas: Canvas, head: HeadB) -> None:
    """CSF of the cavity, the brain with cortex and white matter, and sulcal CSF."""
    box = canvas.everything
    x, y, z = canvas.coords(box)
    inner = canvas.cached("inner", _inner(head))
    above_floor = -canvas.cached("below", _below_floor)
    w = canvas.width
    canvas.blend(box, _occupancy(np.maximum(inner, -above_floor), w), head.csf_hu)
    gap = head.csf_gap_mm
    brain = np.maximum(inner + F32(gap), F32(0.8 + 0.3 * gap) - above_floor)
    fold, sulci = _gyri(head, x, y, z)
    canvas.blend(box, _occupancy(brain, w), head.grey_hu)
    cortex = F32(4.5) + F32(2.0) * fold
    canvas.blend(box, _occupancy(brain + cortex, w), head.white_hu)
    depth, width = F32(9.0 + 1.5 * gap), F32(0.10 + 0.05 * gap)
    sulcal = np.clip(F32(1.0) - np.abs(sulci) / width, 0, 1) * np.clip(
        F32(1.0) + brain / depth, 0, 1
    )
    canvas.blend(box, sulcal * (brain < 0), head.csf_hu)


def _sylvian(side: float, half: float) -> Solid:
    """A cleft rising backwards from the limen insulae to the convexity."""

    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(
            np.abs(z - F32(6.0) - F32(0.3) * (y + F32(8.0))) - F32(half),
            np.maximum(F32(24.0) - F32(side) * x, np.abs(y - F32(12.0)) - F32(30.0)),
        )
        return out

    return solid


def _lateral_ventricle(side: float, scale: float) -> Solid:
    """A curved body whose frontal and occipital horns droop."""

    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        bent = z + F32(0.011) * (y - F32(8.0)) ** 2
        return superellipsoid(
            x, y, bent, (side * (4 + 5 * scale), 8, 24), (5 * scale, 33, 6 * scale)
        )

    return solid


def _fissure(half: float) -> Solid:
    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(np.abs(x) - F32(half), F32(20.0) - z)
        return out

    return solid


def _tentorium(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A tent of dura, highest along the straight sinus, down to the transverse sinuses and the
    petrous ridges, open in front around the midbrain (the incisura)."""
    sheet = np.abs(z - F32(10.0) + F32(0.4) * (y - F32(40.0)) + F32(0.45) * np.abs(x)) - F32(0.7)
    incisura = np.minimum(F32(14.0) - np.abs(x), F32(45.0) - y)
    out: np.ndarray = np.maximum(sheet, np.maximum(F32(20.0) - y, incisura))
    return out


def paint_deep(canvas: Canvas, head: HeadB) -> None:
    """Deep grey nuclei, fissures, cisterns, the tentorium and the ventricles."""
    v, gap, csf = head.ventricle_scale, head.csf_gap_mm, head.csf_hu
    inside = canvas.cached("inner", _inner(head)) + F32(0.5)
    for s in (1.0, -1.0):
        canvas.ellipsoid((s * 19, -2, 14), (8, 16, 11), head.grey_hu - 2.0)  # basal ganglia
        canvas.ellipsoid((s * 9, 17, 15), (8, 13, 9), head.grey_hu - 1.0)  # thalamus
        lateral = (s * 22, -20, -10) if s > 0 else (-75.0, -20, -10)
        medial = (75.0, 44, 30) if s > 0 else (s * 22, 44, 30)
        canvas.paint(_sylvian(s, 0.7 + 0.35 * gap), csf, lateral, medial, within=inside)
        canvas.ellipsoid((s * 29, 8, -16), (2.5 * v, 12, 3 * v), csf)  # temporal horn
        centre = s * (4 + 5 * v)
        canvas.paint(_lateral_ventricle(s, v), csf, (centre - 12, -28, -2), (centre + 12, 44, 36))
    half = 0.6 + 0.6 * gap
    canvas.paint(_fissure(half), csf, (-half - 2, -90, 18), (half + 2, 100, 110), within=inside)
    canvas.ellipsoid((0, 5, 11), (1.2 * v, 14, 11), csf, 4.0)  # third ventricle
    canvas.ellipsoid((0, 34, -30), (6, 4, 8), csf)  # fourth ventricle
    canvas.ellipsoid((0, -2, 1), (21, 15, 7.5), csf)  # suprasellar cistern
    canvas.ellipsoid((0, 6, -22), (11, 5, 19), csf)  # prepontine cistern
    canvas.paint(_tentorium, TENTORIUM_HU, (-70, 18, -45), (70, 100, 25), within=inside)
