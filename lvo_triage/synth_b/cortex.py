"""Cortical branches grown by space colonisation (Runions et al. 2007) toward cortical targets.

Each hemisphere gets its own random cortical targets, split into the MCA (lateral convexity,
insula and temporal lobe), ACA (medial surface and the parasagittal strip) and PCA (occipital
lobe and the inferior temporal surface) territories. From a few seed points 10-12 mm apart
along the trunk ends (M2 trunks, the early M1 branch, the pericallosal and callosomarginal
arteries, P2), each target pulls its nearest node within the influence distance; a node grows
one step toward the mean direction of its targets (a node whose step lands on an existing node
stops); targets within the kill distance are reached. Nodes that come
near the brain surface are moved onto it (into the subarachnoid space of the nearest surface:
convexity, floor or interhemispheric fissure), so branches run over the cortex as M3/M4
branches do. Radii follow a Murray-like law from the number of leaves downstream
(r ~ leaves^(1/2.7), 1-1.5 mm diameter distally) capped below the trunk's radius.
"""

from __future__ import annotations

import numpy as np

from lvo_triage.synth_b.case import HeadB
from lvo_triage.synth_b.shapes import F32, floor_z, inner_distance, petrous_ridge_y, shell_points
from lvo_triage.synth_b.tubes import LEFT, Branch

STEP_MM = 3.0
INFLUENCE_MM = 32.0
KILL_MM = 6.0
SNAP_MM = 14.0  # nodes nearer the surface than this ride on it
MAX_STEPS = 70
LEAF_R = 0.5
MURRAY = 1 / 2.7


def _depths(head: HeadB, pts: np.ndarray, sign: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f = pts.astype(np.float32)
    vault = -inner_distance(head, f[:, 0], f[:, 1], f[:, 2])
    floor = f[:, 2] - floor_z(f[:, 0], f[:, 1])
    medial = sign * f[:, 0]
    return vault.astype(np.float64), floor.astype(np.float64), medial.astype(np.float64)


def snap(
    head: HeadB, pts: np.ndarray, sign: float, depth: np.ndarray, *, only_near: bool
) -> np.ndarray:
    """Points moved to ``depth`` (mm) beneath their nearest brain surface; with ``only_near``,
    only those within :data:`SNAP_MM` of it."""
    vault, floor, medial = _depths(head, pts, sign)
    fissure = 0.6 + 0.6 * head.csf_gap_mm
    medial_depth = medial - fissure
    nearest = np.minimum(np.minimum(vault, floor), medial_depth)
    out = pts.copy()
    move = nearest < SNAP_MM if only_near else np.ones(len(pts), dtype=bool)
    centre = np.asarray(head.centre)
    to_vault = move & (vault <= floor) & (vault <= medial_depth)
    if to_vault.any():
        rel = pts[to_vault] - centre
        rel /= np.maximum(np.linalg.norm(rel, axis=1, keepdims=True), 1e-6)
        out[to_vault] = shell_points(head, rel, -(head.csf_gap_mm + depth[to_vault]))
    to_floor = move & ~to_vault & (floor <= medial_depth)
    if to_floor.any():
        p = pts[to_floor].astype(np.float32)
        out[to_floor, 2] = floor_z(p[:, 0], p[:, 1]) + 0.8 + 0.3 * head.csf_gap_mm + depth[to_floor]
    to_medial = move & ~to_vault & ~to_floor
    out[to_medial, 0] = sign * (fissure + depth[to_medial])
    return out


def cortical_targets(
    rng: np.random.Generator, head: HeadB, side: int, counts: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """Targets (n, 3) of the MCA, ACA and PCA territories of one hemisphere."""
    sign = 1.0 if side == LEFT else -1.0
    u = rng.normal(size=(6000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    u[:, 0] = sign * np.abs(u[:, 0])
    pts = shell_points(head, u, -(head.csf_gap_mm + 1.5))
    x, y, z = np.abs(pts[:, 0]), pts[:, 1], pts[:, 2]
    cerebellum = (z < -15) & (y > petrous_ridge_y(x.astype(F32)) + 3)
    aca_edge, pca_edge = 24 + rng.normal(0, 3), 58 + rng.normal(0, 5)
    aca = (x < aca_edge) & (z > 28) & (y < 40) & ~cerebellum
    pca = ((y > pca_edge) | ((z < -10) & (y > -2))) & ~cerebellum & ~aca
    mca = ~(aca | pca | cerebellum) & (x > 20)
    medial = _medial_targets(rng, head, sign)
    n_mca, n_aca, n_pca = counts
    return {
        "MCA": pts[mca][:n_mca],
        "ACA": np.vstack([pts[aca][: n_aca // 2], medial["ACA"][: n_aca - n_aca // 2]]),
        "PCA": np.vstack([pts[pca][: (2 * n_pca) // 3], medial["PCA"][: n_pca - (2 * n_pca) // 3]]),
    }


def _medial_targets(rng: np.random.Generator, head: HeadB, sign: float) -> dict[str, np.ndarray]:
    n = 3000
    x = sign * (0.6 + 0.6 * head.csf_gap_mm + rng.uniform(1.0, 2.5, n))
    y, z = rng.uniform(-75, 95, n), rng.uniform(-5, 105, n)
    pts = np.stack([x, y, z], axis=1)
    f = pts.astype(np.float32)
    inside = inner_distance(head, f[:, 0], f[:, 1], f[:, 2]) < -(head.csf_gap_mm + 4.0)
    above = z > floor_z(f[:, 0], f[:, 1]) + 6.0
    callosum = (y > -32) & (y < 42) & (z < 48) & (z > 5)
    ok = inside & above & ~callosum
    aca = ok & (y < 42)
    pca = ok & (y >= 48) & (z > -5)
    return {"ACA": pts[aca], "PCA": pts[pca]}


def grow(
    rng: np.random.Generator,
    head: HeadB,
    side: int,
    seeds: list[tuple[int, int, np.ndarray, float]],
    targets: np.ndarray,
    name: str,
) -> list[Branch]:
    """Branches grown from ``seeds`` (parent branch, its point, position, its radius) toward
    ``targets``; their ``parent`` indices refer to the seeds' branches as given."""
    sign = 1.0 if side == LEFT else -1.0
    nodes = [s[2] for s in seeds]
    parents = [-1] * len(seeds)
    alive = np.asarray(targets, dtype=np.float64)
    for _ in range(MAX_STEPS):
        if len(alive) == 0:
            break
        pos = np.asarray(nodes)
        d = np.linalg.norm(alive[:, None, :] - pos[None, :, :], axis=2)
        nearest, dist = d.argmin(axis=1), d.min(axis=1)
        keep = dist > KILL_MM
        alive, nearest, dist = alive[keep], nearest[keep], dist[keep]
        pulled = dist < INFLUENCE_MM
        if not pulled.any():
            break
        pull = np.zeros_like(pos)
        units = (alive[pulled] - pos[nearest[pulled]]) / dist[pulled, None]
        np.add.at(pull, nearest[pulled], units)
        growing = np.flatnonzero(np.linalg.norm(pull, axis=1) > 1e-6)
        step = pull[growing] / np.linalg.norm(pull[growing], axis=1, keepdims=True)
        new = pos[growing] + STEP_MM * step + rng.normal(0, 0.5, (len(growing), 3))
        new = snap(head, new, sign, rng.uniform(0.5, 2.5, len(new)), only_near=True)
        # a node whose step lands on an existing node is stuck (its targets lie beyond the
        # surface it rides on): it stops instead of sprouting stubs at every step
        fresh = (
            np.linalg.norm(new[:, None, :] - pos[None, :, :], axis=2).min(axis=1) > 0.5 * STEP_MM
        )
        if not fresh.any():
            break
        nodes.extend(new[fresh])
        parents.extend(int(g) for g in growing[fresh])
    return _branches(nodes, parents, seeds, name, side)


def _branches(
    nodes: list[np.ndarray],
    parents: list[int],
    seeds: list[tuple[int, int, np.ndarray, float]],
    name: str,
    side: int,
) -> list[Branch]:
    """Node tree → chains between branch points, with radii from the leaves downstream."""
    n, n_seeds = len(nodes), len(seeds)
    children: list[list[int]] = [[] for _ in range(n)]
    for node in range(n_seeds, n):
        children[parents[node]].append(node)
    leaves = np.zeros(n)
    root = np.arange(n)
    for node in range(n_seeds, n):
        root[node] = root[parents[node]]
    for node in range(n - 1, n_seeds - 1, -1):
        leaves[node] += 1.0 if not children[node] else 0.0
        leaves[parents[node]] += leaves[node]
    cap = np.array([0.8 * seeds[root[i]][3] for i in range(n)])
    radius = np.minimum(LEAF_R * np.maximum(leaves, 1.0) ** MURRAY, np.maximum(cap, LEAF_R))
    where: dict[int, tuple[int, int]] = {i: (seeds[i][0], seeds[i][1]) for i in range(n_seeds)}
    out: list[Branch] = []
    starts = [
        c for node in range(n) for c in children[node] if node < n_seeds or len(children[node]) > 1
    ]
    for start in sorted(starts):
        chain = [start]
        while len(children[chain[-1]]) == 1:
            chain.append(children[chain[-1]][0])
        parent = parents[start]
        parent_branch, parent_at = where[parent]
        pts = np.vstack([nodes[parent]] + [nodes[c] for c in chain])
        radii = np.concatenate([[radius[start]], radius[chain]])
        index = -(len(out) + 1)  # negative: a branch of this list, resolved by the caller
        out.append(Branch(name, side, "artery", pts, radii, parent_branch, parent_at))
        for k, c in enumerate(chain):
            where[c] = (index, k + 1)
        # branches that start from this chain's nodes follow in sorted(starts) order
    return out
