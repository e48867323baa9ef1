"""Turn the vessel tree into HU-carrying tubes, applying the occlusion (if any).

Downstream of a clot the vessels stay in the anatomy but carry no contrast (brain HU plus a small
residual), except for retrograde leptomeningeal collateral filling of the distal cortical branches,
which increases toward their distal ends. The clot itself is an extra short tube at 50-80 HU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lvo_triage.synth.anatomy import PREFIX, arc_fraction
from lvo_triage.synth.spec import PhantomSpec


@dataclass(frozen=True)
class Tube:
    """A polyline in the head frame with radius (mm) and HU per point, ready to rasterise."""

    name: str
    points: np.ndarray  # (n, 3)
    radii: np.ndarray  # (n,)
    hu: np.ndarray  # (n,)


def _arc_mm(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _clot_tube(
    points: np.ndarray, radii: np.ndarray, start_mm: float, length_mm: float, hu: float
) -> Tube:
    arc = _arc_mm(points)
    end_mm = min(start_mm + length_mm, arc[-1])
    start_mm = max(0.0, min(start_mm, end_mm - 2.0))
    s = np.linspace(start_mm, end_mm, max(2, int(np.ceil((end_mm - start_mm) / 1.0)) + 1))
    pts = np.stack([np.interp(s, arc, points[:, d]) for d in range(3)], axis=1)
    r = 1.05 * np.interp(s, arc, radii)
    return Tube("clot", pts, r, np.full(len(s), hu))


def fill_fractions(spec: PhantomSpec) -> tuple[dict[str, np.ndarray], Tube | None]:
    """Per-vessel, per-point contrast filling in [0, 1] and the clot tube (None when no LVO)."""
    fills: dict[str, np.ndarray] = {}
    arrays = {v.name: v.as_arrays() for v in spec.vessels}
    for name, (pts, _) in arrays.items():
        fills[name] = np.ones(len(pts))
    if not spec.lvo:
        return fills, None
    if spec.side is None or spec.site is None:
        msg = f"lvo case {spec.case_id!r} needs side and site, got {spec.side!r}, {spec.site!r}"
        raise ValueError(msg)
    p = PREFIX[spec.side]

    def occlude_from(name: str, start_mm: float) -> None:
        pts, _ = arrays[name]
        fills[name] = np.where(_arc_mm(pts) >= start_mm, 0.0, 1.0)

    def collateral(names: list[str]) -> None:
        for n in names:
            t = arc_fraction(arrays[n][0])
            fills[n] = spec.collateral * t**1.5

    divisions = ["sup", "inf"]
    if spec.site == "ICA-T":
        pts, radii = arrays[f"{p}_ICA"]
        total = float(_arc_mm(pts)[-1])
        start = total - spec.clot_len_mm
        occlude_from(f"{p}_ICA", start)
        clot = _clot_tube(pts, radii, start, spec.clot_len_mm, spec.clot_hu)
        fills[f"{p}_M1"] = np.zeros(len(arrays[f"{p}_M1"][0]))
        if not spec.a1_fills_from_acom:
            fills[f"{p}_A1"] = np.zeros(len(arrays[f"{p}_A1"][0]))
    elif spec.site == "M1":
        pts, radii = arrays[f"{p}_M1"]
        total = float(_arc_mm(pts)[-1])
        start = spec.clot_pos * 0.6 * max(total - spec.clot_len_mm, 0.0)
        occlude_from(f"{p}_M1", start)
        clot = _clot_tube(pts, radii, start, spec.clot_len_mm, spec.clot_hu)
    else:
        divisions = [spec.m2_division]
        name = f"{p}_M2_{spec.m2_division}"
        pts, radii = arrays[name]
        total = float(_arc_mm(pts)[-1])
        start = spec.clot_pos * 0.3 * total
        occlude_from(name, start)
        clot = _clot_tube(pts, radii, start, min(spec.clot_len_mm, 0.7 * total), spec.clot_hu)
    for div in divisions:
        m2 = f"{p}_M2_{div}"
        if spec.site != "M2":
            fills[m2] = np.zeros(len(arrays[m2][0]))
        collateral([n for n in arrays if n.startswith(f"{p}_MCA_{div}_")])
    return fills, clot


def build_tubes(spec: PhantomSpec) -> list[Tube]:
    """All vessels with per-point HU (contrast level times filling), plus the clot last."""
    fills, clot = fill_fractions(spec)
    unfilled = spec.white_hu + spec.residual_hu
    tubes = []
    for v in spec.vessels:
        pts, radii = v.as_arrays()
        level = spec.artery_hu * v.hu_scale
        if v.kind == "vein":
            level *= spec.venous_fraction
        hu = unfilled + fills[v.name] * (level - unfilled)
        tubes.append(Tube(v.name, pts, radii, hu))
    if clot is not None:
        tubes.append(clot)
    return tubes
