"""Family B: everything drawn for one phantom, as frozen (hashable) dataclasses.

Coordinates of the *head frame* (millimetres) follow DICOM's LPS axes: +x is the patient's
left, +y posterior, +z superior. Its origin is the circle of Willis (the suprasellar cistern).
The acquisition's pose then places the head frame in the scanner's patient coordinates.

Paired quantities are ``(left, right)`` tuples, in that order, everywhere in family B.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

SIDES = ("left", "right")
SITES = ("ICA-T", "M1", "M2")
COLLATERAL_GRADES = ("none", "poor", "moderate", "good")


class Factor(StrEnum):
    """Out-of-range factors: each pushes one property beyond the usual CTA protocol."""

    VENOUS = "venous_phase"
    LOW_DOSE = "low_dose_noise"
    STRONG_TILT = "strong_tilt"
    VERTEX_CUT = "vertex_cut"
    STREAKS = "skull_base_streaks"
    DIM = "dim_arteries"


Pair = tuple[float, float]


@dataclass(frozen=True)
class HeadB:
    """Head shape (superquadric cranial cavity with smooth bumps) and tissue densities."""

    age: int
    sex: str  # "F" or "M"
    half_axes: tuple[float, float, float]  # inner table semi-axes x, y, z (mm)
    centre: tuple[float, float, float]  # of the cranial superquadric, head frame (mm)
    exponent: float  # superquadric exponent (2 = ellipsoid)
    taper: float  # relative widening of the skull towards the back (egg shape)
    bumps: tuple[tuple[float, float, float, float, float], ...]  # ux, uy, uz, amplitude, width
    skull_mm: float  # outer minus inner table (vault thickness)
    scalp_mm: float
    csf_gap_mm: float  # subarachnoid space over the convexity (grows with atrophy)
    ventricle_scale: float
    gyral_phase: tuple[float, float, float]
    grey_hu: float
    white_hu: float
    csf_hu: float
    cortical_hu: float  # outer and inner tables
    diploe_hu: float
    scalp_hu: float
    fat_hu: float


@dataclass(frozen=True)
class VesselsB:
    """Calibres and variants of the arterial tree; the cortical trees grow from ``tree_seed``.

    Radii in mm. Published ranges (diameters): ICA 4-5 mm, M1 ~3 mm (15-25 mm long), M2
    2-2.5 mm, M3/M4 1-1.5 mm, A1 ~2 mm (hypoplastic < 1.2 mm in 10-15 %), P1 ~2 mm (fetal
    origin of the PCA in 15-20 %), basilar ~3 mm, vertebral 3-4 mm (dominance common).
    """

    tree_seed: int
    ica_r: Pair
    m1_r: Pair
    m1_mm: Pair  # M1 length
    m2_trunks: tuple[int, int]  # 2 bifurcation, 3 trifurcation
    early_branch: tuple[bool, bool]  # early (temporal) branch from the proximal M1
    a1_r: Pair
    p1_r: Pair
    pcomm_r: Pair
    va_r: Pair
    basilar_r: float
    mca_targets: tuple[int, int]  # cortical attractors per hemisphere: unequal branch counts
    aca_targets: tuple[int, int]
    pca_targets: tuple[int, int]
    tortuosity: float  # scale of the jitter of landmarks (grows with age)
    sinus_r: Pair  # transverse sinus radius (right dominance is common)
    plaques: tuple[tuple[int, float, float, float, float], ...]  # side 0/1, s, angle, mm, HU


@dataclass(frozen=True)
class ContrastB:
    """Bolus timing: arterial and venous enhancement (HU of the blood pool)."""

    phase: str  # early_arterial, arterial, late_arterial, venous
    artery_hu: float
    vein_hu: float  # dural sinuses and cortical veins
    blood_hu: float  # unenhanced blood
    agent: str


@dataclass(frozen=True)
class AcquisitionB:
    """Pose of the head in the scanner, the slice geometry and how the series is stored."""

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    shift_mm: tuple[float, float, float]  # head-frame origin in patient coordinates
    fov_mm: float
    spacing_mm: float  # between slices
    thickness_mm: float
    tilt_deg: float  # gantry-like tilt of the slice plane about the patient's x axis
    bottom_mm: float  # lowest covered level, head-frame z (C1/C2)
    top_margin_mm: float  # above the scalp vertex (negative: vertex cut off)
    descending: bool  # InstanceNumber 1 at the top
    encoding: str  # explicit, implicit, rle, j2k
    signed: bool
    intercept: float
    pad_hu: float | None  # HU outside the reconstruction circle (None: no circle)
    kernel: str  # soft, standard, sharp
    noise_hu: float
    streak_hu: float  # beam hardening / metal-like streaks through the posterior fossa
    kvp: int


@dataclass(frozen=True)
class OcclusionB:
    """A clot and what it leaves of the distal territory."""

    site: str  # ICA-T, M1, M2
    side: str  # patient's side
    clot_mm: float
    clot_hu: float
    offset_mm: float  # clot start after the origin of the occluded segment
    m2_trunk: int  # which M2 trunk (0: superior division)
    collateral: str  # none, poor, moderate, good
    fill: float  # distal arterial HU as a fraction of normal arterial enhancement
    delay_mm: float  # retrograde filling fades in over this distance from the clot


@dataclass(frozen=True)
class CaseB:
    """One family-B phantom: deterministic from ``seed``."""

    case_id: str
    seed: int
    head: HeadB
    vessels: VesselsB
    contrast: ContrastB
    acquisition: AcquisitionB
    occlusion: OcclusionB | None
    factors: tuple[str, ...] = ()

    @property
    def lvo(self) -> bool:
        return self.occlusion is not None

    @property
    def side(self) -> str | None:
        return self.occlusion.side if self.occlusion else None

    @property
    def site(self) -> str | None:
        return self.occlusion.site if self.occlusion else None
