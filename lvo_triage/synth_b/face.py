"""Below and in front of the brain: face, skull base, upper neck and the first two vertebrae.

Landmarks (head frame, mm) from adult CT morphometry: orbits ~35 mm wide centred ~32 mm from
the midline with globes of radius ~12 mm; maxillary sinuses ~25 x 30 x 30 mm; sphenoid sinus
under the sella; petrous pyramids (the densest bone of the body, 1600-2000 HU) running
anteromedially from the mastoids to the apex beside the clivus; foramen magnum ~35 x 30 mm; C1
ring ~10-20 mm below the basion with the dens of C2 inside it; spinal canal ~16 mm wide.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.synth_b.canvas import Canvas, Value
from lvo_triage.synth_b.case import HeadB
from lvo_triage.synth_b.shapes import F32, Solid, rod, superellipsoid

PETROUS_HU = 1800.0
TEETH_HU = 2200.0
CANCELLOUS_HU = 420.0
MUSCLE_HU = 48.0
GLOBE_HU = 12.0
LENS_HU = 115.0


def _mottled(base: float, spread: float, k: float) -> Value:
    """A value varying like trabecular bone or air cells around ``base``."""

    def value(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        out: np.ndarray = F32(base) + F32(spread) * np.sin(F32(k) * x) * np.sin(F32(k) * y + z)
        return out

    return value


def _neck(shrink: float) -> Solid:
    """The neck: a vertical super-elliptic cylinder closed at the top below the skull base."""

    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        column = superellipsoid(x, y, z, (0, 10, -60), (60 - shrink, 60 - shrink, 400), 2.6)
        out: np.ndarray = np.maximum(column, z + F32(20.0))
        return out

    return solid


def _ring(cy: float, squash: float, radius: float, half: float, cz: float, thick: float) -> Solid:
    """An oval ring in an axial plane (dental arch, vertebral arches)."""

    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        r = np.sqrt(x**2 + (F32(squash) * (y - F32(cy))) ** 2)
        out: np.ndarray = np.maximum(
            np.abs(r - F32(radius)) - F32(half), np.abs(z - F32(cz)) - F32(thick)
        )
        return out

    return solid


def _column(cy: float, radius: float, z_lo: float, z_hi: float) -> Solid:
    """A vertical cylinder around (0, cy) from ``z_lo`` to ``z_hi``."""

    def solid(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        mid, half = F32(0.5 * (z_lo + z_hi)), F32(0.5 * (z_hi - z_lo))
        out: np.ndarray = np.maximum(
            np.sqrt(x**2 + (y - F32(cy)) ** 2) - F32(radius), np.abs(z - mid) - half
        )
        return out

    return solid


def _behind(solid: Solid, y0: float) -> Solid:
    """``solid`` kept where y >= y0 (the posterior half of a ring)."""

    def cut(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(solid(x, y, z), F32(y0) - y)
        return out

    return cut


def _in_front(solid: Solid, y0: float) -> Solid:
    def cut(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(solid(x, y, z), y - F32(y0))
        return out

    return cut


def _septum(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(
        np.abs(x) - F32(0.8), superellipsoid(x, y, z, (0, -62, -45), (11, 29, 20), 2.5)
    )
    return out


def _airway(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Nasopharynx and oropharynx."""
    naso = superellipsoid(x, y, z, (0, -28, -48), (12, 10, 9))
    oro = np.maximum(superellipsoid(x, y, z, (0, -17, 0), (13, 7, 400), 2.5), z + F32(50.0))
    out: np.ndarray = np.minimum(naso, oro)
    return out


def _canal(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The spinal canal, widening into the foramen magnum."""
    widen = F32(6.0) * np.clip((z + F32(60.0)) / F32(14.0), 0, 1)
    out: np.ndarray = np.maximum(
        np.sqrt(x**2 + (y - F32(28.0)) ** 2) - F32(8.0) - widen, z + F32(44.0)
    )
    return out


def paint_soft(canvas: Canvas, head: HeadB) -> None:
    """Neck and face soft tissue, painted before the vault (which covers their upper part)."""
    canvas.paint(_neck(0.0), head.fat_hu, (-62, -52, -200), (62, 72, -15))
    canvas.paint(_neck(6.0), MUSCLE_HU, (-62, -52, -200), (62, 72, -15))
    canvas.ellipsoid((0, -48, -42), (58, 46, 46), MUSCLE_HU - 8.0, 2.4)
    canvas.ellipsoid((0, -94, -35), (9, 12, 17), MUSCLE_HU - 10.0)  # nose


def paint_skull_base(canvas: Canvas, head: HeadB) -> None:
    """Facial bones and their cavities, petrous bones, mastoids, clivus, C1/C2, the airway and
    the spinal canal; painted after the vault, before the cranial cavity."""
    cortical = head.cortical_hu
    canvas.ellipsoid((0, -56, -42), (44, 27, 27), _mottled(CANCELLOUS_HU - 100.0, 120.0, 0.9), 3.0)
    arch = _in_front(_ring(-48, 1.3, 24, 5, -70, 6), -42)
    canvas.paint(arch, TEETH_HU, (-32, -80, -78), (32, -40, -62))  # maxillary arch, teeth
    for s in (1.0, -1.0):
        canvas.ellipsoid((s * 33, -60, -18), (16, 22, 15), head.fat_hu)  # orbit
        canvas.ellipsoid((s * 33, -70, -18), (12, 12, 12), GLOBE_HU)
        canvas.ellipsoid((s * 33, -81, -18), (4.5, 2.0, 4.5), LENS_HU)
        canvas.ellipsoid((s * 27, -55, -48), (12, 15, 14), -1000.0)  # maxillary sinus
        apex, base = (s * 14, 2.0, -31.0), (s * 47, 22.0, -33.0)
        canvas.paint(
            rod(apex, base, 7.0), PETROUS_HU, (s * 30 - 28, -8, -42), (s * 30 + 28, 32, -24)
        )
        canvas.ellipsoid((s * 50, 30, -42), (9, 11, 11), _mottled(-500.0, 380.0, 1.4))  # mastoid
    canvas.ellipsoid((0, -62, -45), (11, 31, 21), -1000.0, 2.5)  # nasal cavity
    canvas.paint(_septum, CANCELLOUS_HU, (-3, -93, -67), (3, -31, -23))
    canvas.ellipsoid((0, -50, -20), (10, 19, 9), _mottled(-650.0, 300.0, 1.6))  # ethmoid
    canvas.ellipsoid((0, -14, -31), (12, 10, 8), -1000.0)  # sphenoid sinus
    canvas.paint(_airway, -1000.0, (-15, -40, -200), (15, -8, -37))
    canvas.paint(rod((0, -5, -24), (0, 10, -45), 6.0), cortical * 0.6, (-8, -13, -53), (8, 18, -16))
    # C1: an oval ring around the dens; C2: body, dens and posterior arch
    canvas.paint(_ring(26, 1.25, 21, 5, -60, 5), cortical * 0.7, (-30, 4, -68), (30, 48, -52))
    canvas.paint(_column(13, 9, -100, -68), CANCELLOUS_HU, (-10, 3, -200), (10, 23, -66))
    canvas.paint(_column(13, 5, -69, -53), CANCELLOUS_HU, (-6, 7, -70), (6, 19, -52))
    c2_arch = _behind(_ring(30, 1.3, 15, 4, -80, 6), 24)
    canvas.paint(c2_arch, cortical * 0.6, (-22, 22, -88), (22, 50, -72))
    canvas.paint(_canal, head.csf_hu, (-16, 12, -200), (16, 44, -40))
    canvas.paint(_column(26, 5.5, -200, -42), head.white_hu + 3.0, (-8, 18, -200), (8, 34, -38))
