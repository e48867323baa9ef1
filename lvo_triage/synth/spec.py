"""PhantomSpec: every random choice of one synthetic case, drawn once from its seed.

Random streams are independent (``SeedSequence(seed).spawn``): the label, the anatomy, the tissue
contrast, the acquisition and the occlusion details each have their own, so the same seed with a
different label gives the *same* head, vessels and scan, only the occlusion differs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lvo_triage.synth.anatomy import (
    SIDES,
    HeadShape,
    Point,
    Vessel,
    sample_head,
    sample_vessels,
    scale_vessels,
)

SITES: tuple[str, str, str] = ("ICA-T", "M1", "M2")
SITE_PROBS: tuple[float, float, float] = (0.25, 0.45, 0.30)


@dataclass(frozen=True)
class PhantomSpec:
    """Everything needed to render one case deterministically."""

    case_id: str
    seed: int
    lvo: bool
    side: str | None  # "left" | "right" (patient's side) when lvo
    site: str | None  # "ICA-T" | "M1" | "M2" when lvo
    # anatomy (head frame, mm)
    head: HeadShape
    vessels: tuple[Vessel, ...]
    hypoplastic_a1: str | None
    fetal_pca: tuple[str, ...]
    absent_pcomm: tuple[str, ...]
    # pose: head frame -> patient LPS
    pose_deg: Point  # yaw (about z), pitch (about x), roll (about y)
    pose_shift_mm: Point
    # tissue HU
    scalp_hu: float
    bone_hu: float
    grey_hu: float
    white_hu: float
    csf_hu: float
    neck_hu: float
    artery_hu: float
    venous_fraction: float
    noise_sigma: float
    # occlusion details (drawn for every case, used only when lvo)
    clot_len_mm: float
    clot_pos: float  # where the clot starts, as a fraction of the occluded segment
    clot_hu: float
    m2_division: str  # "sup" | "inf"
    collateral: float  # fraction of normal contrast reached by distal cortical branches
    a1_fills_from_acom: bool
    residual_hu: float
    # acquisition
    pixel_mm: float
    slice_mm: float
    slice_thickness_mm: float
    fast_slice_mm: float
    fov_offset_mm: tuple[float, float]
    below_cow_mm: float  # coverage starts this far below the circle of Willis
    vertex_margin_mm: float  # coverage stops this far beyond the vertex (negative: cut)
    tilt_deg: float  # rotation of the slice plane about the patient x axis (0: axial)
    table_z_mm: float
    instances_descending: bool
    kvp: float
    # artefacts (see artefacts.py)
    streak_hu: float = 0.0
    streak_count: int = 0
    streak_width_mm: float = 3.0
    motion_mm: float = 0.0
    motion_from: float = 0.0
    motion_to: float = 0.0
    out_of_range: tuple[str, ...] = ()  # factors drawn outside the training ranges

    def rotation(self) -> np.ndarray:
        """3x3 rotation of the head pose (head frame -> LPS)."""
        return pose_rotation(*self.pose_deg)

    def translation(self) -> np.ndarray:
        sx, sy, sz = self.pose_shift_mm
        return np.array([sx, sy, sz + self.table_z_mm])


def pose_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(r), 0, np.sin(r)], [0, 1, 0], [-np.sin(r), 0, np.cos(r)]])
    out: np.ndarray = rz @ rx @ ry
    return out


def _scaled_head(head: HeadShape, scale: np.ndarray) -> HeadShape:
    c = np.asarray(head.centre) * scale
    a = np.asarray(head.inner_axes) * scale
    return replace(
        head,
        centre=(float(c[0]), float(c[1]), float(c[2])),
        inner_axes=(float(a[0]), float(a[1]), float(a[2])),
        base_z=head.base_z * float(scale[2]),
    )


def _check_label(lvo: bool | None, side: str | None, site: str | None) -> None:
    if side is not None and side not in SIDES:
        msg = f"side must be 'left' or 'right', got {side!r}"
        raise ValueError(msg)
    if site is not None and site not in SITES:
        msg = f"site must be one of {SITES}, got {site!r}"
        raise ValueError(msg)
    if lvo is False and (side is not None or site is not None):
        msg = f"side/site given ({side!r}, {site!r}) for a case with lvo=False"
        raise ValueError(msg)


def sample_spec(
    seed: int,
    *,
    case_id: str,
    lvo: bool | None = None,
    side: str | None = None,
    site: str | None = None,
    out_of_range: bool = False,
) -> PhantomSpec:
    """Draw all population parameters of one case from ``seed``.

    ``out_of_range=True`` then redraws two random factors beyond the training ranges (the
    out-of-range test set); everything else stays the case's own.

    ``lvo=None`` draws the label 50/50; ``side``/``site`` are random when not given and lvo.
    Giving ``side`` or ``site`` with ``lvo=None`` implies ``lvo=True``.
    """
    if seed < 0:
        msg = f"seed must be >= 0, got {seed}"
        raise ValueError(msg)
    _check_label(lvo, side, site)
    s_label, s_anat, s_tissue, s_acq, s_occl, s_art, s_out = (
        np.random.default_rng(ss) for ss in np.random.SeedSequence(seed).spawn(7)
    )
    # label stream: always the same number of draws
    lvo_draw = bool(s_label.random() < 0.5)
    side_draw = SIDES[int(s_label.integers(2))]
    site_draw = SITES[int(s_label.choice(3, p=SITE_PROBS))]
    if lvo is None:
        lvo = True if (side is not None or site is not None) else lvo_draw
    if lvo:
        side = side or side_draw
        site = site or site_draw
    # anatomy stream
    head, scale = sample_head(s_anat)
    hypo = SIDES[int(s_anat.integers(2))] if s_anat.random() < 0.15 else None
    fetal = tuple(sd for sd in SIDES if s_anat.random() < 0.12)
    absent = tuple(sd for sd in SIDES if s_anat.random() < 0.15 and sd not in fetal)
    vessels = sample_vessels(
        s_anat, head, hypoplastic_a1=hypo, fetal_pca=fetal, absent_pcomm=absent
    )
    vessels = scale_vessels(vessels, scale)
    head = _scaled_head(head, scale)
    pose = (
        float(s_anat.uniform(-8, 8)),
        float(s_anat.uniform(-20, 20)),
        float(s_anat.uniform(-8, 8)),
    )
    shift = tuple(float(v) for v in s_anat.uniform(-5, 5, 3))
    # tissue stream
    t = s_tissue
    grey = float(t.uniform(33, 45))
    white = float(max(20.0, grey - t.uniform(5, 10)))
    # acquisition stream
    a = s_acq
    slice_mm = float(a.uniform(0.5, 1.25))
    thickness = float(slice_mm * a.choice([1.0, 1.0, 1.25, 1.5]))
    tilt = float(a.uniform(-15, 15))
    # occlusion stream: drawn for every case so that nothing else depends on the label
    o = s_occl
    spec = PhantomSpec(
        case_id=case_id,
        seed=seed,
        lvo=bool(lvo),
        side=side if lvo else None,
        site=site if lvo else None,
        head=head,
        vessels=vessels,
        hypoplastic_a1=hypo,
        fetal_pca=fetal,
        absent_pcomm=absent,
        pose_deg=pose,
        pose_shift_mm=(shift[0], shift[1], shift[2]),
        scalp_hu=float(t.uniform(40, 60)),
        bone_hu=float(t.uniform(700, 1600)),
        grey_hu=grey,
        white_hu=white,
        csf_hu=float(t.uniform(0, 15)),
        neck_hu=float(t.uniform(35, 60)),
        artery_hu=float(t.uniform(200, 500)),
        venous_fraction=float(t.uniform(0.3, 1.1)),
        noise_sigma=float(t.uniform(5, 15)),
        clot_len_mm=float(o.uniform(5, 12)),
        clot_pos=float(o.uniform(0.0, 1.0)),
        clot_hu=float(o.uniform(50, 80)),
        m2_division="sup" if o.random() < 0.5 else "inf",
        collateral=float(o.uniform(0.0, 0.6)),
        a1_fills_from_acom=bool(o.random() < 0.5),
        residual_hu=float(o.uniform(0, 12)),
        pixel_mm=float(a.uniform(0.4, 0.5)),
        slice_mm=slice_mm,
        slice_thickness_mm=thickness,
        fast_slice_mm=float(a.uniform(1.0, 1.45)),
        fov_offset_mm=(float(a.uniform(-15, 15)), float(a.uniform(-15, 15))),
        below_cow_mm=float(a.uniform(45, 68)),
        vertex_margin_mm=float(a.uniform(-20, 14)),
        tilt_deg=tilt if a.random() < 0.1 else 0.0,
        table_z_mm=float(a.uniform(-120, 60)),
        instances_descending=bool(a.random() < 0.5),
        kvp=float(a.choice([80.0, 100.0, 120.0])),
        **_artefacts(s_art),
    )
    return _push_out_of_range(spec, s_out) if out_of_range else spec


def _artefacts(r: np.random.Generator) -> dict[str, Any]:
    """Artefact strengths within the training ranges (always the same number of draws)."""
    streak = float(r.uniform(0, 60)) if r.random() < 0.7 else 0.0
    count = int(r.integers(2, 6))
    width = float(r.uniform(2.0, 4.0))
    moved = r.random() < 0.3
    amount = float(r.uniform(0.5, 2.5))
    start = float(r.uniform(0.0, 0.8))
    length = float(r.uniform(0.05, 0.2))
    return {
        "streak_hu": streak,
        "streak_count": count,
        "streak_width_mm": width,
        "motion_mm": amount if moved else 0.0,
        "motion_from": start,
        "motion_to": min(1.0, start + length),
    }


# Each out-of-range case draws two of these factors beyond the training ranges (see README).
OUT_OF_RANGE_FACTORS = (
    "dim arteries",  # artery_hu 130-200 (training 200-500)
    "noise",  # noise_sigma 15-22 HU (training 5-15)
    "head tilt",  # pitch 20-28 degrees either way (training up to 20)
    "venous phase",  # venous_fraction 1.1-1.5 (training 0.3-1.1)
    "thick slices",  # reconstructed thickness 2-3 mm (training up to 1.9 mm)
    "streaks",  # skull-base streaks 60-100 HU (training up to 60)
    "motion",  # 2.5-4 mm ghosting (training up to 2.5)
)


def _push_out_of_range(spec: PhantomSpec, r: np.random.Generator) -> PhantomSpec:
    picks = [OUT_OF_RANGE_FACTORS[i] for i in sorted(r.choice(7, size=2, replace=False))]
    sign = 1.0 if r.random() < 0.5 else -1.0
    values: dict[str, dict[str, Any]] = {
        "dim arteries": {"artery_hu": float(r.uniform(130, 200))},
        "noise": {"noise_sigma": float(r.uniform(15, 22))},
        "head tilt": {
            "pose_deg": (spec.pose_deg[0], sign * float(r.uniform(20, 28)), spec.pose_deg[2])
        },
        "venous phase": {"venous_fraction": float(r.uniform(1.1, 1.5))},
        "thick slices": {"slice_thickness_mm": float(r.uniform(2.0, 3.0))},
        "streaks": {"streak_hu": float(r.uniform(60, 100)), "streak_count": 5},
        "motion": {"motion_mm": float(r.uniform(2.5, 4.0)), "motion_to": spec.motion_from + 0.2},
    }
    changes: dict[str, Any] = {"out_of_range": tuple(picks)}
    for name in picks:
        changes.update(values[name])
    return replace(spec, **changes)
