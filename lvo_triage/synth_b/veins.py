"""Dural sinuses and cerebral veins.

The superior sagittal sinus follows the inner table in the midline from the frontal region to
the torcula, widening backwards (~3 to 8-10 mm); the transverse sinuses run laterally along
the occipital bone (the right one dominant in most people, a hypoplastic left one common) into
the sigmoid sinuses and the jugular bulbs and internal jugular veins. The straight sinus takes
the vein of Galen (internal cerebral veins, basal veins of Rosenthal, inferior sagittal sinus)
to the torcula. The cavernous sinuses surround the cavernous ICA. Superficial veins: the
superior cerebral veins climb the convexity to the sagittal sinus, the superficial middle
cerebral vein follows the sylvian fissure forward, the vein of Labbe runs back to the
transverse sinus.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.synth_b.case import HeadB, VesselsB
from lvo_triage.synth_b.shapes import shell_points
from lvo_triage.synth_b.tubes import LEFT, MIDLINE, RIGHT, Branch, mirror, tube

GALEN = (0.0, 38.0, 18.0)
SIGMOID: list[tuple[float, float, float]] = [
    (47, 38, -38),
    (42, 30, -48),
    (33, 17, -60),
    (30, 10, -90),
    (29, 8, -125),
]


def _unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return out


def _along_shell(head: HeadB, directions: np.ndarray, inset_mm: np.ndarray | float) -> np.ndarray:
    u = _unit(np.asarray(directions, dtype=np.float64))
    return shell_points(head, u, np.broadcast_to(-np.asarray(inset_mm, dtype=float), len(u)))


def build_veins(head: HeadB, vessels: VesselsB, rng: np.random.Generator) -> list[Branch]:
    """Every vein of the case, as branches of kind ``vein``."""
    out: list[Branch] = []
    angles = np.radians(np.linspace(25, 200, 40))
    u = np.stack([np.zeros_like(angles), -np.cos(angles), np.sin(angles)], axis=1)
    r_sss = np.linspace(1.5, 0.5 * sum(vessels.sinus_r) + 0.5, len(angles))
    sss_pts = _along_shell(head, u, r_sss + 0.5)
    out.append(tube("SSS", MIDLINE, sss_pts[::3], 1.5, float(r_sss[-1]), kind="vein"))
    torcula = sss_pts[-1]
    out.append(tube("StS", MIDLINE, [GALEN, (0, 62, 5), torcula], 2.0, 2.6, kind="vein"))
    out.append(
        tube("ISS", MIDLINE, [(0, -25, 42), (0, 10, 46), (0, 30, 32), GALEN], 0.7, 1.0, kind="vein")
    )
    for side in (LEFT, RIGHT):
        r_ts = vessels.sinus_r[side]
        phi = np.radians(np.linspace(0, 58, 10))
        sign = 1.0 if side == LEFT else -1.0
        dirs = np.stack([sign * np.sin(phi), np.cos(phi), np.full_like(phi, -0.5)], axis=1)
        ts = _along_shell(head, dirs, r_ts + 0.5)
        ts[0] = torcula
        sig = mirror(SIGMOID, side)
        out.append(tube("TS", side, np.vstack([ts, sig]), r_ts, 0.9 * r_ts + 1.5, kind="vein"))
        cav = mirror([(13, -23, -13), (16, -12, -17), (16, -2, -20)], side)
        out.append(tube("CavS", side, cav, 3.0, 3.3, kind="vein"))
        out.append(
            tube(
                "IPS",
                side,
                np.vstack([cav[-1], mirror([(24, 14, -36), (40, 30, -48)], side)]),
                1.2,
                1.4,
                kind="vein",
            )
        )
        icv = mirror([(2.5, -2, 22), (2.5, 20, 24), (1.5, 33, 20)], side)
        out.append(tube("ICV", side, np.vstack([icv, [GALEN]]), 0.8, 1.0, kind="vein"))
        bvr = mirror([(14, -5, -4), (19, 12, 0), (14, 28, 10), (5, 36, 16)], side)
        out.append(tube("BVR", side, np.vstack([bvr, [GALEN]]), 0.8, 1.0, kind="vein"))
        out.extend(_superficial(head, rng, side))
    return out


def _superficial(head: HeadB, rng: np.random.Generator, side: int) -> list[Branch]:
    sign = 1.0 if side == LEFT else -1.0
    inset = 0.5 * head.csf_gap_mm + 1.0
    out = []
    smcv = _along_shell(
        head, mirror([(0.9, 0.35, -0.05), (0.95, 0.05, -0.15), (0.8, -0.5, -0.25)], side), inset
    )
    smcv = np.vstack([smcv, mirror([(30, -28, -12), (16, -24, -13)], side)])
    out.append(tube("SMCV", side, smcv, 1.0, 1.5, kind="vein"))
    labbe = _along_shell(
        head, mirror([(0.95, 0.25, -0.1), (0.85, 0.5, -0.3), (0.6, 0.75, -0.45)], side), inset
    )
    out.append(tube("Labbe", side, labbe, 1.0, 1.4, kind="vein"))
    for _ in range(int(rng.integers(5, 10))):
        start = np.array([sign * 0.95, rng.uniform(-0.6, 0.7), rng.uniform(-0.05, 0.35)])
        end = np.array([sign * 0.1, start[1] * 0.8 - 0.1, 1.0])
        t = np.linspace(0, 1, 10)[:, None]
        dirs = _unit((1 - t) * _unit(start) + t * _unit(end))
        r = rng.uniform(0.7, 1.3)
        pts = _along_shell(head, dirs, np.linspace(inset, inset + 1.0, 10))
        out.append(tube("CtxV", side, pts, 0.7 * r, r, kind="vein"))
    return out
