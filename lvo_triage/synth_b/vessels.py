"""The vessels of a case and how much contrast each point of them carries.

:func:`build_vessels` assembles the named arteries, the cortical trees and the veins (cached:
the tree depends only on the head and the vessel variants, never on the label). The clot
(:func:`artery_hu`) follows the flow from its site: points inside it take the clot's density;
everything downstream loses its contrast, except what collaterals refill retrogradely (a
fraction of normal enhancement that fades in with the distance from the clot, the 'delayed'
look of leptomeningeal collaterals). Around an ICA-T clot the ipsilateral ACA fills across the
anterior communicating artery and the stagnant ICA below the clot enhances less.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lvo_triage.synth_b.arteries import build_trunks
from lvo_triage.synth_b.case import SIDES, CaseB, HeadB, OcclusionB, VesselsB
from lvo_triage.synth_b.cortex import cortical_targets, grow
from lvo_triage.synth_b.tubes import Branch
from lvo_triage.synth_b.veins import build_veins

CORTICAL = ("MCA-ctx", "ACA-ctx", "PCA-ctx")
PHASE_DISTAL = {"early_arterial": 0.8, "arterial": 0.93, "late_arterial": 1.0, "venous": 1.0}
CROSS_FILLED = {"A1": 0.85, "A2": 0.85, "ACA-ctx": 0.85, "AComm": 1.0}
OTHER_FED = {"PComm": 0.8, "OphA": 0.8, "P2": 0.85, "PCA-ctx": 0.85}


@dataclass(frozen=True)
class Vascular:
    """Arteries (a flow tree: parents before children) and veins of one case."""

    arteries: tuple[Branch, ...]
    veins: tuple[Branch, ...]
    index: dict[str, int]  # names of trunks, e.g. "M1.left", "M2.0.right"


def build_vessels(case: CaseB) -> Vascular:
    """The vessels of ``case`` (shared by cases with the same head and vessel variants:
    do not change them)."""
    return _build(case.head, case.vessels)


@lru_cache(maxsize=4)
def _build(head: HeadB, vessels: VesselsB) -> Vascular:
    rng = np.random.default_rng(vessels.tree_seed)
    tree, index = build_trunks(head, vessels, rng)
    for side, label in enumerate(SIDES):
        counts = (vessels.mca_targets[side], vessels.aca_targets[side], vessels.pca_targets[side])
        targets = cortical_targets(rng, head, side, counts)
        mca = [
            index[k] for k in sorted(index) if k.endswith(label) and k.startswith(("M2.", "M1E."))
        ]
        ends = np.array([tree.branches[b].points[-1] for b in mca])
        owner = np.linalg.norm(targets["MCA"][:, None] - ends[None], axis=2).argmin(axis=1)
        for n, trunk in enumerate(mca):
            mine = targets["MCA"][owner == n]
            _grow_from(tree.branches, rng, head, side, [trunk], 0.5, 12.0, mine, "MCA-ctx")
        aca = [index[f"A2.{label}"], index[f"CMA.{label}"]]
        _grow_from(tree.branches, rng, head, side, aca, 0.3, 12.0, targets["ACA"], "ACA-ctx")
        p2 = [index[f"P2.{label}"]]
        _grow_from(tree.branches, rng, head, side, p2, 0.4, 10.0, targets["PCA"], "PCA-ctx")
    veins = build_veins(head, vessels, rng)
    return Vascular(tuple(tree.branches), tuple(veins), index)


def _grow_from(
    branches: list[Branch],
    rng: np.random.Generator,
    head: HeadB,
    side: int,
    trunks: list[int],
    start: float,
    every_mm: float,
    targets: np.ndarray,
    name: str,
) -> None:
    """Grow a cortical tree from points ``every_mm`` apart along the distal part of ``trunks``
    (from the fraction ``start`` of their length to their end): few roots, so that branches
    share their proximal course and divide, as cortical arteries do."""
    if len(targets) == 0:
        return
    seeds = []
    for b in trunks:
        br = branches[b]
        arc = br.arc()
        marks = np.arange(arc[-1], start * arc[-1] - 1e-6, -every_mm)
        picks = sorted({int(np.argmin(np.abs(arc - m))) for m in marks})
        seeds += [(b, k, br.points[k], float(br.radius[k])) for k in picks]
    offset = len(branches)
    for branch in grow(rng, head, side, seeds, targets, name):
        if branch.parent < 0:
            branch.parent = offset - branch.parent - 1
        branches.append(branch)


def _clot_start(vascular: Vascular, occ: OcclusionB) -> tuple[int, float]:
    """The branch and the arc length (mm) where the clot begins."""
    index, arteries = vascular.index, vascular.arteries
    if occ.site == "ICA-T":
        ica = index[f"ICA.{occ.side}"]
        return ica, arteries[ica].length - max(3.0, 0.4 * occ.clot_mm)
    if occ.site == "M1":
        m1 = index[f"M1.{occ.side}"]
        return m1, min(occ.offset_mm, 0.5 * arteries[m1].length)
    trunks = sorted(k for k in index if k.startswith("M2.") and k.endswith(occ.side))
    m2 = index[trunks[occ.m2_trunk % len(trunks)]]
    return m2, min(0.5 * occ.offset_mm, 0.3 * arteries[m2].length)


def occlusion_map(vascular: Vascular, occ: OcclusionB) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per artery and point: whether it is inside the clot, and its distance (mm) downstream of
    the clot along the flow (``inf`` where the clot does not reach)."""
    arteries = vascular.arteries
    clot = [np.zeros(len(b.points), dtype=bool) for b in arteries]
    dist = [np.full(len(b.points), np.inf) for b in arteries]
    first, s0 = _clot_start(vascular, occ)
    reach: dict[int, float] = {first: s0}  # branch → arc where the clot begins on it
    left = {first: occ.clot_mm}
    for b, branch in enumerate(arteries):
        arc = branch.arc()
        if b not in reach and branch.parent >= 0:
            p = branch.parent
            if (
                clot[p][branch.attach]
                and branch.name in ("M1", "A1", "M2")
                and branch.attach == len(arteries[p].points) - 1
            ):
                reach[b] = 0.0  # the clot goes on into the continuation of its vessel
                left[b] = left[p] - (arteries[p].length - reach[p])
            elif clot[p][branch.attach] or np.isfinite(dist[p][branch.attach]):
                upstream = 0.0 if clot[p][branch.attach] else dist[p][branch.attach]
                dist[b] = upstream + arc
        if b in reach:
            s, span = reach[b], max(left[b], 0.0)
            clot[b] = (arc >= s) & (arc <= s + span)
            dist[b] = np.where(arc > s + span, arc - s - span, np.inf)
    return clot, dist


def artery_hu(case: CaseB, vascular: Vascular) -> list[np.ndarray]:
    """HU of the blood at every point of every artery (the clot's HU inside it)."""
    con, occ = case.contrast, case.occlusion
    distal = PHASE_DISTAL[con.phase]
    factors = [
        np.full(len(b.points), distal if b.name in CORTICAL else 1.0) for b in vascular.arteries
    ]
    clots = [np.zeros(len(b.points), dtype=bool) for b in vascular.arteries]
    if occ is not None:
        clots, dist = occlusion_map(vascular, occ)
        refill = occ.fill * (
            1.0 - np.exp(-np.maximum(np.concatenate(dist) - 3.0, 0.0) / occ.delay_mm)
        )
        at = 0
        for b, branch in enumerate(vascular.arteries):
            n = len(branch.points)
            hit = np.isfinite(dist[b])
            keep = CROSS_FILLED.get(branch.name) if occ.site == "ICA-T" else None
            keep = keep or OTHER_FED.get(branch.name)
            if keep is not None:
                factors[b][hit] *= keep
            else:
                factors[b][hit] *= refill[at : at + n][hit]
            at += n
        if occ.site == "ICA-T":  # stagnant column below the clot
            ica = vascular.index[f"ICA.{occ.side}"]
            before = ~clots[ica] & ~np.isfinite(dist[ica])
            factors[ica][before] *= 0.6 + 0.4 * occ.fill
    out = []
    for b in range(len(vascular.arteries)):
        hu = con.blood_hu + factors[b] * (con.artery_hu - con.blood_hu)
        if occ is not None:
            hu = np.where(clots[b], occ.clot_hu, hu)
        out.append(hu)
    return out


def vein_hu(case: CaseB, vascular: Vascular) -> list[np.ndarray]:
    con = case.contrast
    cortical = con.blood_hu + 0.9 * (con.vein_hu - con.blood_hu)
    return [
        np.full(len(v.points), cortical if v.name == "CtxV" else con.vein_hu)
        for v in vascular.veins
    ]
