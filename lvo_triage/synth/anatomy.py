"""Sample a random head and its arterial/venous tree as geometric primitives.

Everything here lives in the *head frame*: millimetres, origin near the centre of the circle of
Willis, +x the patient's left, +y posterior, +z superior (LPS-aligned before the head pose).
Vessels are polylines with a radius per point; names are ``"L_M1"``, ``"R_MCA_sup_1"``, ... with
``L``/``R`` the patient's side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Point = tuple[float, float, float]

SIDES: tuple[str, str] = ("left", "right")
SIGN: dict[str, float] = {"left": 1.0, "right": -1.0}
PREFIX: dict[str, str] = {"left": "L", "right": "R"}


@dataclass(frozen=True)
class Vessel:
    """One tube: a polyline in the head frame with a radius (mm) per point."""

    name: str
    kind: str  # "artery" | "vein"
    points: tuple[Point, ...]
    radii: tuple[float, ...]
    hu_scale: float  # per-vessel multiplicative variation of the contrast level

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.points, dtype=np.float64), np.asarray(self.radii, dtype=np.float64)


@dataclass(frozen=True)
class HeadShape:
    """Tissue geometry: ellipsoids (centre, semi-axes in mm) and the skull base plane."""

    centre: Point  # centre of the inner skull (brain) ellipsoid
    inner_axes: Point  # semi-axes of the inner skull surface
    skull_mm: float
    scalp_mm: float
    base_z: float  # skull base plane: z = base_z + base_slope * y (posterior fossa lower)
    base_slope: float
    base_bone_mm: float
    cortex_mm: float
    ventricle_scale: float
    cistern_axes: Point  # basal (suprasellar/ambient) cistern around the circle of Willis

    def axes(self, offset_mm: float) -> np.ndarray:
        """Semi-axes of the inner surface grown (offset > 0) or shrunk (< 0) by ``offset_mm``."""
        return np.asarray(self.inner_axes) + offset_mm


def smooth_path(ctrl: np.ndarray, step_mm: float = 1.5) -> np.ndarray:
    """Catmull-Rom spline through control points, resampled every ~``step_mm`` of arc length."""
    if len(ctrl) < 2:
        msg = f"a path needs at least 2 control points, got {len(ctrl)}"
        raise ValueError(msg)
    ext = np.vstack([2 * ctrl[0] - ctrl[1], ctrl, 2 * ctrl[-1] - ctrl[-2]])
    t = np.linspace(0.0, 1.0, 12, endpoint=False)[:, None]
    pieces = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        pieces.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    dense = np.vstack([*pieces, ctrl[-1:]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    n = max(2, int(np.ceil(arc[-1] / step_mm)) + 1)
    s = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(s, arc, dense[:, d]) for d in range(3)], axis=1)


def arc_fraction(points: np.ndarray) -> np.ndarray:
    """Normalised arc length (0 at the first point, 1 at the last) of a polyline."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    out: np.ndarray = arc / max(arc[-1], 1e-9)
    return out


def sample_head(rng: np.random.Generator) -> tuple[HeadShape, np.ndarray]:
    """Random head shape and the per-axis scale applied to all anatomy (head size ±8%)."""
    scale = rng.uniform(0.92, 1.08) * rng.uniform(0.97, 1.03, size=3)
    head = HeadShape(
        centre=(0.0, 8.0, 15.0),
        inner_axes=(68.0, 85.0, 85.0),
        skull_mm=float(rng.uniform(5.0, 8.0)),
        scalp_mm=float(rng.uniform(3.0, 6.0)),
        base_z=float(rng.uniform(-31.0, -25.0)),
        base_slope=float(rng.uniform(-0.25, -0.15)),
        base_bone_mm=float(rng.uniform(10.0, 18.0)),
        cortex_mm=float(rng.uniform(2.5, 4.0)),
        ventricle_scale=float(rng.uniform(0.7, 1.4)),
        cistern_axes=(float(rng.uniform(18, 26)), float(rng.uniform(12, 18)), 6.0),
    )
    return head, scale


def _vessel(
    rng: np.random.Generator,
    name: str,
    ctrl: npt.ArrayLike,
    r0: float,
    r1: float,
    *,
    jitter: float = 0.0,
    kind: str = "artery",
    fix_ends: bool = True,
) -> Vessel:
    pts = np.asarray(ctrl, dtype=np.float64)
    noise = rng.normal(0.0, jitter, size=pts.shape) if jitter > 0 else np.zeros_like(pts)
    if fix_ends:
        noise[0] = noise[-1] = 0.0
    path = smooth_path(pts + noise)
    radii = np.linspace(r0, r1, len(path))
    hu_scale = float(rng.uniform(0.9, 1.1)) if kind == "artery" else float(rng.uniform(0.95, 1.05))
    return Vessel(
        name=name,
        kind=kind,
        points=tuple((float(p[0]), float(p[1]), float(p[2])) for p in path),
        radii=tuple(float(r) for r in radii),
        hu_scale=hu_scale,
    )


def _surface_point(
    head: HeadShape, depth: float, s: float, alpha: float, beta: float
) -> np.ndarray:
    """Point ``depth`` mm inside the brain surface in direction (alpha posterior, beta up)."""
    u = np.array([s * np.cos(beta) * np.cos(alpha), np.cos(beta) * np.sin(alpha), np.sin(beta)])
    ax = head.axes(-depth)
    rho = 1.0 / np.sqrt(np.sum((u / ax) ** 2))
    out: np.ndarray = np.asarray(head.centre) + rho * u
    return out


def _cortical_branch(
    rng: np.random.Generator, head: HeadShape, name: str, start: np.ndarray, s: float, upper: bool
) -> Vessel:
    rel = start - np.asarray(head.centre)
    alpha0 = float(np.arctan2(rel[1], s * rel[0]))
    beta0 = float(np.arctan2(rel[2], np.hypot(rel[0], rel[1])))
    if upper:
        d_alpha, d_beta = np.radians(rng.uniform(-30, 45)), np.radians(rng.uniform(30, 70))
    else:
        d_alpha, d_beta = np.radians(rng.uniform(20, 65)), np.radians(rng.uniform(-22, -4))
    n = int(rng.integers(7, 11))
    depth = rng.uniform(2.5, 5.0)
    phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 3.0)
    ctrl = [start]
    for i, t in enumerate(np.linspace(0.12, 1.0, n)):
        wig = amp * np.sin(phase + 2.2 * np.pi * t)
        p = _surface_point(
            head, depth + 0.5 * wig * (i % 2), s, alpha0 + d_alpha * t, beta0 + d_beta * t
        )
        p[2] = max(p[2], head.base_z + head.base_slope * p[1] + 6.0)  # stay above the skull base
        ctrl.append(p)
    return _vessel(
        rng, name, np.asarray(ctrl), rng.uniform(0.5, 0.75), rng.uniform(0.35, 0.5), jitter=1.2
    )


def _side_arteries(
    rng: np.random.Generator,
    head: HeadShape,
    side: str,
    *,
    hypo_a1: bool,
    fetal: bool,
    no_pcomm: bool,
) -> tuple[list[Vessel], dict[str, np.ndarray]]:
    s, p = SIGN[side], PREFIX[side]
    term = np.array([s * rng.uniform(12.5, 15.5), rng.uniform(-2, 2), rng.uniform(-2, 2)])
    r_ica = rng.uniform(2.0, 2.5)
    ica_ctrl = [
        (s * 22, 10, -80), (s * 22, 8, -58), (s * 21, 4, -42), (s * 18, -6, -33),
        (s * 16, -14, -24), (s * 15, -14, -14), (s * 15.5, -8, -8), (s * 15, -3, -4),
    ]  # fmt: skip
    ica_pts = np.vstack([np.asarray(ica_ctrl, float) + rng.normal(0, 1.5, (8, 3)), term])
    out = [_vessel(rng, f"{p}_ICA", ica_pts, r_ica, 0.9 * r_ica)]
    syl = term + np.array([s * rng.uniform(15, 25), rng.uniform(-6, 2), rng.uniform(-1, 5)])
    m1_mid = 0.5 * (term + syl) + rng.normal(0, 1.5, 3)
    r_m1 = rng.uniform(1.5, 1.75)
    out.append(_vessel(rng, f"{p}_M1", [term, m1_mid, syl], r_m1, 0.92 * r_m1))
    ends = {
        "sup": syl + np.array([s * rng.uniform(3, 8), rng.uniform(8, 18), rng.uniform(12, 22)]),
        "inf": syl + np.array([s * rng.uniform(3, 8), rng.uniform(12, 22), rng.uniform(-12, -4)]),
    }
    for div, end in ends.items():
        mid = 0.5 * (syl + end) + np.array([s * rng.uniform(-1, 2), 0, 0]) + rng.normal(0, 1.5, 3)
        r = rng.uniform(1.0, 1.25)
        m2 = _vessel(rng, f"{p}_M2_{div}", [syl, mid, end], r, 0.85 * r)
        out.append(m2)
        pts, _ = m2.as_arrays()
        frac = arc_fraction(pts)
        n_br = int(rng.integers(2, 4))
        for b in range(n_br):
            f = 1.0 if b == 0 else rng.uniform(0.5, 1.0)
            start = pts[int(np.searchsorted(frac, f - 1e-9))]
            out.append(_cortical_branch(rng, head, f"{p}_MCA_{div}_{b}", start, s, div == "sup"))
    acom_pt = np.array([s * rng.uniform(1.2, 2.2), rng.uniform(-14, -10), rng.uniform(1, 5)])
    r_a1 = rng.uniform(1.0, 1.25) * (rng.uniform(0.35, 0.5) if hypo_a1 else 1.0)
    a1_mid = 0.5 * (term + acom_pt) + rng.normal(0, 1.0, 3)
    out.append(_vessel(rng, f"{p}_A1", [term, a1_mid, acom_pt], r_a1, r_a1))
    aca_ctrl = [
        acom_pt, (s * 1.8, -22, 10), (s * 2, -32, 25), (s * 2, -28, 42), (s * 2, -10, 55),
        (s * 2.5, 15, 60), (s * 3, 40, 52), (s * 3, 55, 40),
    ]  # fmt: skip
    aca = np.asarray(aca_ctrl, float) + rng.normal(0, 2.0, (8, 3)) * np.array([0.2, 1, 1])
    aca[0] = acom_pt
    out.append(_vessel(rng, f"{p}_ACA", aca, rng.uniform(0.9, 1.1), rng.uniform(0.55, 0.7)))
    pj = np.array([s * rng.uniform(8, 11), rng.uniform(8, 12), rng.uniform(-6, -2)])
    r_pcomm = rng.uniform(1.0, 1.2) if fetal else rng.uniform(0.5, 0.75)
    if not no_pcomm:
        pc_start = np.array([s * 14.5, -2.0, -3.0]) + rng.normal(0, 0.7, 3)
        out.append(
            _vessel(rng, f"{p}_PComm", [pc_start, 0.5 * (pc_start + pj), pj], r_pcomm, r_pcomm)
        )
    pca_ctrl = [
        pj,
        (s * 18, 20, -3),
        (s * 23, 35, 0),
        (s * 20, 55, 4),
        (s * 14, 72, 8),
        (s * 9, 82, 10),
    ]
    pca = np.asarray(pca_ctrl, float) + rng.normal(0, 2.0, (6, 3))
    pca[0] = pj
    out.append(_vessel(rng, f"{p}_PCA", pca, rng.uniform(0.9, 1.1), rng.uniform(0.55, 0.7)))
    return out, {"acom": acom_pt, "pj": pj, "term": term}


def sample_vessels(
    rng: np.random.Generator,
    head: HeadShape,
    *,
    hypoplastic_a1: str | None,
    fetal_pca: tuple[str, ...],
    absent_pcomm: tuple[str, ...],
) -> tuple[Vessel, ...]:
    """The arterial tree and the main venous sinuses (unscaled head frame)."""
    vessels: list[Vessel] = []
    marks: dict[str, dict[str, np.ndarray]] = {}
    for side in SIDES:
        vs, mk = _side_arteries(
            rng,
            head,
            side,
            hypo_a1=hypoplastic_a1 == side,
            fetal=side in fetal_pca,
            no_pcomm=side in absent_pcomm,
        )
        vessels += vs
        marks[side] = mk
    r_acom = rng.uniform(0.6, 0.9)
    vessels.append(
        _vessel(rng, "ACom", [marks["right"]["acom"], marks["left"]["acom"]], r_acom, r_acom)
    )
    confl = np.array([0.0, rng.uniform(20, 24), rng.uniform(-40, -34)])
    tip = np.array([0.0, rng.uniform(10, 14), rng.uniform(-9, -5)])
    r_ba = rng.uniform(1.5, 2.0)
    mid = 0.5 * (confl + tip) + np.array([rng.normal(0, 1.5), rng.normal(0, 1.0), 0])
    vessels.append(_vessel(rng, "BA", [confl, mid, tip], r_ba, 0.9 * r_ba))
    for side in SIDES:
        s, p = SIGN[side], PREFIX[side]
        va = [(s * 9, 32, -85), (s * 10, 35, -65), (s * 7, 30, -50), (s * 3, 25, -42), tuple(confl)]
        vessels.append(
            _vessel(rng, f"{p}_VA", va, rng.uniform(1.3, 1.8), rng.uniform(1.2, 1.5), jitter=1.5)
        )
        fetal = side in fetal_pca
        r_p1 = rng.uniform(0.3, 0.4) if fetal else rng.uniform(0.9, 1.1)
        pj = marks[side]["pj"]
        vessels.append(_vessel(rng, f"{p}_P1", [tip, 0.5 * (tip + pj), pj], r_p1, r_p1))
    vessels += _sinuses(rng, head)
    return tuple(vessels)


def _sinuses(rng: np.random.Generator, head: HeadShape) -> list[Vessel]:
    c = np.asarray(head.centre)
    r_sss = rng.uniform(2.8, 3.8)
    ax = head.axes(-(r_sss + 0.3))
    th = np.radians(np.linspace(-60, 112, 12))
    sss = np.stack(
        [np.zeros_like(th), c[1] + ax[1] * np.sin(th), c[2] + ax[2] * np.cos(th)], axis=1
    )
    out = [_vessel(rng, "SSS", sss, 0.55 * r_sss, r_sss, kind="vein", jitter=0.3)]
    torc = sss[-1]
    out.append(_vessel(rng, "StraightS", [torc, (0, 55, 5), (0, 35, 22)], 2.0, 1.6, kind="vein"))
    z_rel = (torc[2] - c[2]) / ax[2]
    k = np.sqrt(max(1.0 - z_rel**2, 0.05))
    for side in SIDES:
        s, p = SIGN[side], PREFIX[side]
        r_ts = rng.uniform(2.2, 4.0)
        axt = head.axes(-(r_ts + 0.3)) * k
        phi = np.radians(np.linspace(3, 72, 7))
        ts = np.stack(
            [s * axt[0] * np.sin(phi), c[1] + axt[1] * np.cos(phi), np.full_like(phi, torc[2])], 1
        )
        ts = np.vstack([torc, ts])
        end = ts[-1]
        sig = [
            end,
            end + np.array([-s * 4, -8, -12]),
            (s * 45, 18, -50),
            (s * 42, 16, -66),
            (s * 40, 16, -86),
        ]
        out.append(_vessel(rng, f"{p}_TS", ts, r_ts, r_ts, kind="vein"))
        out.append(_vessel(rng, f"{p}_SigS", np.asarray(sig, float), r_ts, 0.9 * r_ts, kind="vein"))
    return out


def scale_vessels(vessels: tuple[Vessel, ...], scale: np.ndarray) -> tuple[Vessel, ...]:
    """Apply the per-axis head scale to vessel centrelines (radii are not scaled)."""
    out = []
    for v in vessels:
        pts = np.asarray(v.points) * scale
        out.append(
            Vessel(
                name=v.name,
                kind=v.kind,
                points=tuple((float(a), float(b), float(c)) for a, b, c in pts),
                radii=v.radii,
                hu_scale=v.hu_scale,
            )
        )
    return tuple(out)
