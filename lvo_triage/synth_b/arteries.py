"""The named arteries: splines through landmarks of the carotid, vertebrobasilar and circle of
Willis anatomy, with the case's calibres and variants; cortical trees then grow from the trunk
ends (``cortex.py``).

Landmarks (head frame, mm, left side; the right mirrors them) follow published descriptions:
the ICA ascends in the neck, turns anteromedially in the petrous bone, forms the cavernous
siphon beside the sella (posterior and anterior genu) and ends lateral to the optic chiasm; the
M1 runs laterally 15-25 mm to the limen insulae, where it divides into 2 (sometimes 3) M2 trunks
running back and up over the insula; the A1 runs medially ~13 mm to the anterior communicating
artery; the vertebral arteries loop over the atlas (V3), pierce the dura and join in front of
the medulla into the ~30 mm basilar, which ends behind the dorsum sellae in the P1 segments.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.synth_b.case import HeadB, VesselsB
from lvo_triage.synth_b.shapes import shell_points
from lvo_triage.synth_b.tubes import (
    LEFT,
    MIDLINE,
    RIGHT,
    Branch,
    Landmarks,
    index_at,
    jitter,
    mirror,
    tube,
)

ICA: list[tuple[float, float, float]] = [
    (26, -2, -125),
    (24, 0, -80),
    (22, 2, -50),
    (20, 0, -42),
    (17, -6, -36),
    (15, -10, -30),
]
ICA += [(15, -11, -22), (16, -6, -17), (17, -14, -14), (16, -21, -10), (14, -19, -3)]
ICA += [(14, -11, 1), (14, -5, 3)]
SIPHON = (6, 11)  # landmarks of the cavernous and clinoid ICA (where plaques sit)
M2_ENDS = {0: (39, 17, 37), 1: (44, 33, 11), 2: (42, 26, 25)}
A2: list[tuple[float, float, float]] = [
    (1.6, -13, 8),
    (2, -18, 18),
    (2.5, -27, 28),
    (3, -31, 40),
    (3, -22, 51),
    (3, -4, 56),
]
A2 += [(3, 20, 53), (3, 40, 42)]
VA: list[tuple[float, float, float]] = [
    (24, 12, -125),
    (25, 13, -78),
    (29, 14, -63),
    (32, 26, -58),
    (24, 38, -56),
]
VA += [(13, 33, -50), (7, 20, -44), (1.5, 10, -37)]
P2: list[tuple[float, float, float]] = [
    (11, 6, -2),
    (18, 13, 0),
    (24, 27, 3),
    (22, 44, 7),
    (17, 58, 9),
]


class TreeBuilder:
    """Collects branches; ``add`` returns the index that children name as ``parent``."""

    def __init__(self) -> None:
        self.branches: list[Branch] = []

    def add(self, branch: Branch) -> int:
        self.branches.append(branch)
        return len(self.branches) - 1

    def child(
        self,
        name: str,
        side: int,
        parent: int,
        at: int,
        rest: Landmarks,
        r0: float,
        r1: float,
    ) -> int:
        """A branch leaving ``parent`` at its point ``at`` through the landmarks ``rest``."""
        start = self.branches[parent].points[at]
        pts = np.vstack([start, np.asarray(rest, dtype=np.float64)])
        return self.add(tube(name, side, pts, r0, r1, parent=parent, attach=at))


def _scalp_path(head: HeadB, directions: Landmarks, side: int) -> np.ndarray:
    u = mirror(directions, side)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return shell_points(head, u, head.skull_mm + 0.5 * head.scalp_mm)


def build_trunks(
    head: HeadB, v: VesselsB, rng: np.random.Generator
) -> tuple[TreeBuilder, dict[str, int]]:
    """The named arteries of both sides; ``index`` maps names like ``M1.left``, ``M2.0.left``,
    ``A2.right``, ``P2.left`` to their branches (the seeds of the cortical trees)."""
    tort = v.tortuosity
    tree, index = TreeBuilder(), {}
    for side, label in ((LEFT, "left"), (RIGHT, "right")):
        ica_pts = jitter(rng, mirror(ICA, side), 0.7 * tort)
        ica_pts[-1] = mirror(ICA, side)[-1] + rng.normal(0, 0.8, 3)
        r_ica = v.ica_r[side]
        ica = tree.add(tube("ICA", side, ica_pts, r_ica, 0.82 * r_ica))
        index[f"ICA.{label}"] = ica
        siphon = tree.branches[ica]
        oph_at = int(np.argmin(np.linalg.norm(siphon.points - ica_pts[10], axis=1)))
        tree.child(
            "OphA",
            side,
            ica,
            oph_at,
            mirror([(18, -30, -10), (26, -45, -16), (30, -58, -18)], side),
            0.6,
            0.45,
        )
        pcomm_at = int(np.argmin(np.linalg.norm(siphon.points - ica_pts[11], axis=1)))
        index[f"PComm.{label}"] = tree.child(
            "PComm",
            side,
            ica,
            pcomm_at,
            mirror([(13, -2, 0), (11, 6, -2)], side),
            v.pcomm_r[side],
            v.pcomm_r[side],
        )
        end = len(siphon.points) - 1
        length = v.m1_mm[side]
        m1_shape = (
            np.array([(0.33, -0.10, 0.05), (0.66, -0.12, 0.12), (0.93, -0.05, 0.25)]) * length
        )
        m1_pts = jitter(rng, siphon.points[end] + mirror(m1_shape, side), 0.6 * tort)
        r_m1 = v.m1_r[side]
        m1 = tree.child("M1", side, ica, end, m1_pts, r_m1, 0.9 * r_m1)
        index[f"M1.{label}"] = m1
        m1_b = tree.branches[m1]
        genu = len(m1_b.points) - 1
        r_m2 = (0.78 if v.m2_trunks[side] == 2 else 0.7) * r_m1
        for trunk in range(v.m2_trunks[side]):
            g = m1_b.points[genu]
            bend = g + mirror([(3, 6, 4 + 2 * (trunk == 0))], side)[0]
            tip = mirror([M2_ENDS[trunk]], side)[0] + rng.normal(0, 2.0, 3)
            mid = 0.5 * (bend + tip) + mirror([(2, 0, 0)], side)[0] + rng.normal(0, 1.5, 3)
            index[f"M2.{trunk}.{label}"] = tree.child(
                "M2", side, m1, genu, [bend, mid, tip], r_m2, 0.85 * r_m2
            )
        if v.early_branch[side]:
            at = index_at(m1_b, rng.uniform(0.3, 0.5) * m1_b.length)
            p = m1_b.points[at]
            rest = [
                p + mirror([(8, -6, -8)], side)[0],
                mirror([(41, -12, -19), (49, -8, -26)], side),
            ]
            index[f"M1E.{label}"] = tree.child(
                "M1-early", side, m1, at, np.vstack([rest[0], rest[1]]), 0.6 * r_m1, 0.5 * r_m1
            )
        for _ in range(int(rng.integers(3, 7))):  # lenticulostriate arteries
            at = index_at(m1_b, rng.uniform(0.1, 0.65) * m1_b.length)
            p = m1_b.points[at]
            up = [
                p + np.array([rng.normal(0, 2), rng.normal(1, 2), 8.0]),
                p + np.array([rng.normal(0, 4), rng.normal(2, 3), 20.0]),
            ]
            tree.child("LSA", side, m1, at, up, 0.35, 0.25)
        a1_end = mirror([(1.6, -13, 8)], side)[0] + rng.normal(0, 0.4, 3)
        a1_mid = 0.5 * (siphon.points[end] + a1_end) + mirror([(0, -2.5, 1.5)], side)[0]
        index[f"A1.{label}"] = tree.child(
            "A1", side, ica, end, [a1_mid, a1_end], v.a1_r[side], 0.95 * v.a1_r[side]
        )
        tree.add(
            tube(
                "ECA",
                side,
                jitter(
                    rng,
                    mirror([(28, -6, -125), (32, -10, -80), (38, -6, -55), (55, -2, -42)], side),
                    tort,
                ),
                1.6,
                1.2,
            )
        )
        eca = len(tree.branches) - 1
        sta = _scalp_path(
            head, [(1, -0.05, -0.45), (1, -0.1, -0.1), (0.85, -0.2, 0.4), (0.6, -0.6, 0.5)], side
        )
        tree.child("STA", side, eca, len(tree.branches[eca].points) - 1, sta, 1.0, 0.6)
        occ = _scalp_path(head, [(0.45, 0.9, -0.45), (0.3, 0.95, -0.1), (0.25, 0.85, 0.35)], side)
        tree.add(
            tube(
                "OccA",
                side,
                np.vstack([mirror([(26, 6, -125), (40, 30, -80), (40, 55, -62)], side), occ]),
                1.0,
                0.6,
            )
        )
    _add_anterior(v, tree, index, rng)
    _add_posterior(v, tree, index, rng)
    return tree, index


def _add_anterior(
    v: VesselsB, tree: TreeBuilder, index: dict[str, int], rng: np.random.Generator
) -> None:
    a1_left = tree.branches[index["A1.left"]]
    a1_right = tree.branches[index["A1.right"]]
    r_acom = rng.uniform(0.55, 0.75)
    tree.child(
        "AComm",
        MIDLINE,
        index["A1.left"],
        len(a1_left.points) - 1,
        [a1_right.points[-1]],
        r_acom,
        r_acom,
    )
    for side, label in ((LEFT, "left"), (RIGHT, "right")):
        a1 = index[f"A1.{label}"]
        pts = jitter(rng, mirror(A2, side)[1:], 0.6 * v.tortuosity)
        pts[:, 0] = np.clip(np.abs(pts[:, 0]), 1.2, 4.0) * (1 if side == LEFT else -1)
        a2 = tree.child("A2", side, a1, len(tree.branches[a1].points) - 1, pts, 1.05, 0.6)
        index[f"A2.{label}"] = a2
        genu = int(
            np.argmin(
                np.linalg.norm(tree.branches[a2].points - mirror([(2.5, -27, 28)], side)[0], axis=1)
            )
        )
        cm = mirror([(4, -44, 40), (4, -32, 62), (4, -2, 72)], side) + rng.normal(0, 1.5, (3, 3))
        cm[:, 0] = 4.0 if side == LEFT else -4.0
        index[f"CMA.{label}"] = tree.child("A2", side, a2, genu, cm, 0.75, 0.55)


def _add_posterior(
    v: VesselsB, tree: TreeBuilder, index: dict[str, int], rng: np.random.Generator
) -> None:
    for side in (LEFT, RIGHT):
        index[f"VA.{side}"] = tree.add(
            tube(
                "VA",
                side,
                jitter(rng, mirror(VA, side), 0.6 * v.tortuosity),
                v.va_r[side],
                0.9 * v.va_r[side],
            )
        )
    dominant = LEFT if v.va_r[0] >= v.va_r[1] else RIGHT
    va = tree.branches[index[f"VA.{dominant}"]]
    bow = rng.uniform(-3, 3) * v.tortuosity
    basilar_pts = [(0, 10, -37), (bow, 8, -22), (0.3 * bow, 7, -6)]
    ba = tree.child(
        "BA",
        MIDLINE,
        index[f"VA.{dominant}"],
        len(va.points) - 1,
        basilar_pts[1:],
        v.basilar_r,
        0.9 * v.basilar_r,
    )
    ba_b = tree.branches[ba]
    tip = len(ba_b.points) - 1
    for side, label in ((LEFT, "left"), (RIGHT, "right")):
        p1 = tree.child(
            "P1", side, ba, tip, mirror([(6, 7, -5), (11, 6, -2)], side), v.p1_r[side], v.p1_r[side]
        )
        fetal = v.pcomm_r[side] > v.p1_r[side]
        parent = index[f"PComm.{label}"] if fetal else p1
        rest = jitter(rng, mirror(P2[1:], side), 0.8 * v.tortuosity)
        r_p2 = max(v.p1_r[side], v.pcomm_r[side], 0.9)
        index[f"P2.{label}"] = tree.child(
            "P2", side, parent, len(tree.branches[parent].points) - 1, rest, r_p2, 0.8 * r_p2
        )
        sca_at = max(tip - 3, 0)
        tree.child(
            "SCA",
            side,
            ba,
            sca_at,
            jitter(
                rng, mirror([(7, 8, -8), (16, 18, -12), (22, 34, -17), (20, 52, -22)], side), 1.0
            ),
            0.65,
            0.45,
        )
        tree.child(
            "AICA",
            side,
            ba,
            min(6, tip),
            jitter(rng, mirror([(12, 12, -30), (25, 22, -33), (32, 38, -36)], side), 1.0),
            0.5,
            0.4,
        )
        vb = tree.branches[index[f"VA.{side}"]]
        at = int(np.argmin(np.linalg.norm(vb.points - mirror([(7, 20, -44)], side)[0], axis=1)))
        tree.child(
            "PICA",
            side,
            index[f"VA.{side}"],
            at,
            jitter(rng, mirror([(9, 30, -52), (14, 46, -54), (18, 60, -44)], side), 1.0),
            0.6,
            0.45,
        )
