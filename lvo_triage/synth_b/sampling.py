"""Draw one family-B case from a seed: anatomy, variants, bolus timing, acquisition, clot.

Every draw comes from a ``numpy.random.Generator`` seeded by ``(seed, topic)``, so changing how
one topic is drawn leaves the others of a seed as they were, and the label (LVO or not, side,
site) never changes the anatomy or the acquisition of a seed.
"""

from __future__ import annotations

import zlib

import numpy as np

from lvo_triage.synth_b.case import (
    COLLATERAL_GRADES,
    SIDES,
    SITES,
    AcquisitionB,
    CaseB,
    ContrastB,
    Factor,
    HeadB,
    OcclusionB,
    VesselsB,
)

SITE_WEIGHTS = (0.25, 0.40, 0.35)
COLLATERAL_FILL = {"none": (0.0, 0.05), "poor": (0.1, 0.25), "moderate": (0.3, 0.5)}
COLLATERAL_FILL["good"] = (0.55, 0.7)
PHASES = ("early_arterial", "arterial", "late_arterial")
ENCODINGS = ("explicit", "implicit", "rle", "j2k")
AGENTS = ("Iohexol 350 mgI/ml", "Iopamidol 370 mgI/ml", "Iomeprol 400 mgI/ml")


def rng_for(seed: int, topic: str) -> np.random.Generator:
    """The generator of one topic of a seed (stable across Python runs)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, zlib.crc32(topic.encode())])


def _pair(rng: np.random.Generator, lo: float, hi: float, spread: float) -> tuple[float, float]:
    """A left/right pair around a common value, the two differing by up to ``spread``."""
    mid = rng.uniform(lo, hi)
    ratio = 1.0 + rng.uniform(-spread, spread)
    return (round(mid * np.sqrt(ratio), 3), round(mid / np.sqrt(ratio), 3))


def sample_head(seed: int) -> HeadB:
    rng = rng_for(seed, "head")
    sex = "F" if rng.random() < 0.5 else "M"
    age = int(rng.integers(35, 92))
    size = rng.normal(1.0, 0.03) * (0.95 if sex == "F" else 1.0)
    half = (rng.uniform(64, 70) * size, rng.uniform(82, 89) * size, rng.uniform(84, 90) * size)
    bumps: list[tuple[float, float, float, float, float]] = []
    for _ in range(int(rng.integers(4, 8))):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        amplitude, width = rng.uniform(-0.04, 0.04), rng.uniform(3, 8)
        bumps.append((float(u[0]), float(u[1]), float(u[2]), float(amplitude), float(width)))
    atrophy = np.clip((age - 40) / 50.0, 0.0, 1.0)
    return HeadB(
        age=age,
        sex=sex,
        half_axes=tuple(round(float(v), 2) for v in half),  # type: ignore[arg-type]
        centre=(0.0, rng.uniform(8, 14), rng.uniform(12, 17)),
        exponent=rng.uniform(2.1, 2.6),
        taper=rng.uniform(0.04, 0.12),
        bumps=tuple(bumps),
        skull_mm=rng.uniform(5.0, 8.0),
        scalp_mm=rng.uniform(4.0, 7.0),
        csf_gap_mm=1.2 + 2.5 * atrophy + rng.uniform(0, 0.8),
        ventricle_scale=0.8 + 0.7 * atrophy + rng.uniform(0, 0.2),
        gyral_phase=tuple(rng.uniform(0, 2 * np.pi, 3)),  # type: ignore[arg-type]
        grey_hu=rng.uniform(35, 45),
        white_hu=rng.uniform(25, 32),
        csf_hu=rng.uniform(0, 15),
        cortical_hu=rng.uniform(700, 1500),
        diploe_hu=rng.uniform(250, 600),
        scalp_hu=rng.uniform(20, 50),
        fat_hu=rng.uniform(-110, -70),
    )


def sample_vessels(seed: int, age: int) -> VesselsB:
    rng = rng_for(seed, "vessels")
    a1 = [rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)]
    if rng.random() < 0.13:  # one A1 hypoplastic (the other dominant)
        weak = int(rng.integers(2))
        a1[weak], a1[1 - weak] = rng.uniform(0.4, 0.6), rng.uniform(1.15, 1.3)
    p1, pcomm = (
        [rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)],
        [rng.uniform(0.3, 0.7) for _ in SIDES],
    )
    for s in range(2):
        if rng.random() < 0.06:  # fetal PCA: tiny P1, PComm as large as the P2
            p1[s], pcomm[s] = rng.uniform(0.3, 0.5), rng.uniform(0.9, 1.1)
        elif rng.random() < 0.03:  # hypoplastic P1 without a fetal PComm
            p1[s] = rng.uniform(0.5, 0.7)
    va_mean, va_kind = rng.uniform(1.45, 1.75), rng.random()
    va = [va_mean, va_mean]
    if va_kind < 0.45:  # left dominant (the most common)
        va = [va_mean * 1.15, va_mean * rng.uniform(0.65, 0.85)]
    elif va_kind < 0.7:
        va = [va_mean * rng.uniform(0.65, 0.85), va_mean * 1.15]
    if rng.random() < 0.08:
        va[int(rng.integers(2))] = rng.uniform(0.6, 0.9)  # hypoplastic vertebral
    plaques: list[tuple[int, float, float, float, float]] = []
    if rng.random() < 0.15 + 0.5 * np.clip((age - 45) / 45, 0, 1):
        for _ in range(int(rng.integers(1, 5))):
            side, where, angle = int(rng.integers(2)), rng.uniform(0.35, 0.85), rng.uniform(0, 6.28)
            plaques.append((side, where, angle, rng.uniform(1.0, 3.0), rng.uniform(600, 1200)))
    return VesselsB(
        tree_seed=int(rng.integers(2**31)),
        ica_r=_pair(rng, 2.0, 2.45, 0.12),
        m1_r=_pair(rng, 1.25, 1.5, 0.2),  # left/right diameters differ by up to ~20 %
        m1_mm=(rng.uniform(15, 25), rng.uniform(15, 25)),
        m2_trunks=tuple(3 if rng.random() < 0.2 else 2 for _ in SIDES),  # type: ignore[arg-type]
        early_branch=(bool(rng.random() < 0.2), bool(rng.random() < 0.2)),
        a1_r=(a1[0], a1[1]),
        p1_r=(p1[0], p1[1]),
        pcomm_r=(pcomm[0], pcomm[1]),
        va_r=(va[0], va[1]),
        basilar_r=rng.uniform(1.35, 1.7),
        mca_targets=(int(rng.integers(70, 140)), int(rng.integers(70, 140))),
        aca_targets=(int(rng.integers(25, 55)), int(rng.integers(25, 55))),
        pca_targets=(int(rng.integers(25, 55)), int(rng.integers(25, 55))),
        tortuosity=0.5 + np.clip((age - 40) / 40, 0, 1) + rng.uniform(0, 0.5),
        sinus_r=(rng.uniform(2.5, 4.5), rng.uniform(3.0, 4.8)),
        plaques=tuple(plaques),
    )


def sample_contrast(seed: int, factors: tuple[str, ...]) -> ContrastB:
    rng = rng_for(seed, "contrast")
    phase = str(rng.choice(PHASES, p=(0.2, 0.55, 0.25)))
    artery = rng.uniform(230, 480) if rng.random() < 0.85 else rng.uniform(150, 550)
    vein_share = {"early_arterial": (0.05, 0.25), "arterial": (0.2, 0.6)}
    vein_share["late_arterial"] = (0.55, 0.95)
    share = rng.uniform(*vein_share[phase])
    if Factor.VENOUS in factors:
        phase, artery = "venous", rng.uniform(180, 320)
        share = rng.uniform(1.1, 1.5)
    if Factor.DIM in factors:
        artery = rng.uniform(130, 200)
    blood = rng.uniform(38, 48)
    return ContrastB(
        phase=phase,
        artery_hu=artery,
        vein_hu=blood + share * (artery - blood),
        blood_hu=blood,
        agent=str(rng.choice(AGENTS)),
    )


def sample_acquisition(seed: int, factors: tuple[str, ...]) -> AcquisitionB:
    rng = rng_for(seed, "acquisition")
    weights = np.array([1, 3, 2, 1, 3, 1, 1]) / 12
    spacing = float(rng.choice((0.5, 0.625, 0.75, 0.8, 1.0, 1.25, 1.5), p=weights))
    tilt = 0.0 if rng.random() < 0.8 else rng.uniform(5, 15) * rng.choice((-1, 1))
    if Factor.STRONG_TILT in factors:
        tilt = rng.uniform(20, 30) * rng.choice((-1, 1))
    signed = bool(rng.random() < 0.5)
    noise = rng.uniform(5, 20) if rng.random() < 0.9 else rng.uniform(20, 30)
    if Factor.LOW_DOSE in factors:
        noise = rng.uniform(25, 35)
    return AcquisitionB(
        yaw_deg=float(np.clip(rng.normal(0, 3), -8, 8)),
        pitch_deg=float(np.clip(rng.normal(0, 4), -10, 10)),
        roll_deg=float(np.clip(rng.normal(0, 2.5), -7, 7)),
        shift_mm=(rng.normal(0, 5), rng.normal(-10, 6), rng.uniform(-400, 200)),
        fov_mm=rng.uniform(200, 250),
        spacing_mm=spacing,
        thickness_mm=max(spacing, min(1.5, spacing * float(rng.choice((1.0, 1.0, 1.25, 1.6))))),
        tilt_deg=tilt,
        bottom_mm=rng.uniform(-95, -72),
        top_margin_mm=rng.uniform(-35, -15) if Factor.VERTEX_CUT in factors else rng.uniform(3, 20),
        descending=bool(rng.random() < 0.3),
        encoding=str(rng.choice(ENCODINGS, p=(0.6, 0.1, 0.2, 0.1))),
        signed=signed,
        intercept=0.0 if signed and rng.random() < 0.5 else -1024.0,
        pad_hu=(float(rng.choice((-2000.0, -3024.0))) if signed else -1024.0)
        if rng.random() < 0.5
        else None,
        kernel=str(rng.choice(("soft", "standard", "sharp"), p=(0.45, 0.4, 0.15))),
        noise_hu=noise,
        streak_hu=rng.uniform(80, 160) if Factor.STREAKS in factors else rng.uniform(0, 20),
        kvp=int(rng.choice((80, 100, 120), p=(0.2, 0.4, 0.4))),
    )


def sample_occlusion(
    seed: int, *, lvo: bool | None, side: str | None, site: str | None
) -> OcclusionB | None:
    rng = rng_for(seed, "occlusion")
    if side is not None and side not in SIDES:
        msg = f"side {side!r} must be one of {', '.join(SIDES)} (the patient's side) or None"
        raise ValueError(msg)
    if site is not None and site not in SITES:
        msg = f"site {site!r} must be one of {', '.join(SITES)} or None"
        raise ValueError(msg)
    drawn_lvo = bool(rng.random() < 0.5)
    if lvo is False and (side is not None or site is not None):
        msg = f"lvo=False with side={side!r}, site={site!r}: a normal case has no side or site"
        raise ValueError(msg)
    drawn_side = str(rng.choice(SIDES))
    drawn_site = str(rng.choice(SITES, p=SITE_WEIGHTS))
    grade = str(rng.choice(COLLATERAL_GRADES, p=(0.15, 0.3, 0.3, 0.25)))
    clot_mm, clot_hu = rng.uniform(5, 25), rng.uniform(40, 70)
    offset, trunk = rng.uniform(0, 8), int(rng.integers(3))
    fill, delay = rng.uniform(*COLLATERAL_FILL[grade]), rng.uniform(8, 30)
    wanted = lvo if lvo is not None else (drawn_lvo or side is not None or site is not None)
    if not wanted:
        return None
    return OcclusionB(
        site=site or drawn_site,
        side=side or drawn_side,
        clot_mm=clot_mm,
        clot_hu=clot_hu,
        offset_mm=offset,
        m2_trunk=trunk,
        collateral=grade,
        fill=fill,
        delay_mm=delay,
    )


def sample_factors(seed: int, out_of_range: bool) -> tuple[str, ...]:
    if not out_of_range:
        return ()
    picked = rng_for(seed, "factors").choice(list(Factor), size=2, replace=False)
    return tuple(sorted(str(f) for f in picked))


def sample_case(
    seed: int,
    *,
    lvo: bool | None = None,
    side: str | None = None,
    site: str | None = None,
    out_of_range: bool = False,
    case_id: str | None = None,
) -> CaseB:
    """Draw a family-B case; ``lvo=None`` draws an occlusion in about half the seeds (a given
    ``side`` or ``site`` implies one). ``out_of_range`` adds two :class:`Factor`\\ s."""
    if seed < 0:
        msg = f"seed must be >= 0, got {seed}"
        raise ValueError(msg)
    factors = sample_factors(seed, out_of_range)
    head = sample_head(seed)
    return CaseB(
        case_id=case_id or f"B{seed}",
        seed=seed,
        head=head,
        vessels=sample_vessels(seed, head.age),
        contrast=sample_contrast(seed, factors),
        acquisition=sample_acquisition(seed, factors),
        occlusion=sample_occlusion(seed, lvo=lvo, side=side, site=site),
        factors=factors,
    )
