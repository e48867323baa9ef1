"""Training data: phantoms rendered on a coarse grid and put through the inference transforms.

Each case is rendered by phantom family ``a`` (``lvo_triage.synth``) or ``b``
(``lvo_triage.synth_b``) at ``spacing_mm`` (default 1 mm, ~8x fewer voxels than an acquisition)
and preprocessed by the same :class:`~lvo_triage.preprocess.Preprocessor` that inference uses,
then stored as uint8 (1/255 of the intensity window per step).
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lvo_triage.dicom.volume_types import Volume
from lvo_triage.model_card import InputSpec
from lvo_triage.preprocess import Preprocessor

SITE_CODES = {None: -1, "ICA-T": 0, "M1": 1, "M2": 2}
# Training over-samples the hard M2 occlusions (the phantom population has 25/45/30 %).
TRAIN_SITES, TRAIN_SITE_PROBS = ("ICA-T", "M1", "M2"), (0.2, 0.35, 0.45)


def training_site(seed: int) -> str:
    """The occlusion site of training case ``seed`` (deterministic, M2 over-sampled)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x517E]))
    return str(rng.choice(TRAIN_SITES, p=TRAIN_SITE_PROBS))


@dataclass
class CaseArrays:
    """Preprocessed cases: ``x`` uint8 (N, 1, X, Y, Z); labels per case."""

    x: np.ndarray
    lvo: np.ndarray
    left: np.ndarray
    site: np.ndarray
    seeds: np.ndarray

    def subset(self, mask: np.ndarray) -> CaseArrays:
        return CaseArrays(
            x=self.x[mask],
            lvo=self.lvo[mask],
            left=self.left[mask],
            site=self.site[mask],
            seeds=self.seeds[mask],
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=self.x, lvo=self.lvo, left=self.left, site=self.site, seeds=self.seeds)

    @classmethod
    def load(cls, path: Path) -> CaseArrays:
        with np.load(path) as z:
            return cls(x=z["x"], lvo=z["lvo"], left=z["left"], site=z["site"], seeds=z["seeds"])


_worker_pre: Preprocessor | None = None


def _init_worker(spec: InputSpec) -> None:
    import torch

    torch.set_num_threads(1)
    global _worker_pre
    _worker_pre = Preprocessor(spec=spec)


FAMILIES = ("a", "b")
Job = tuple[int, bool, float, str, tuple[str, ...]]  # seed, LVO, spacing (mm), family, sites


def _render(job: Job) -> tuple[Volume, bool, str | None, str | None]:
    """The HU volume of one training case and its labels (LVO, side, site)."""
    seed, lvo, spacing_mm, family, sites = job
    site = (sites[seed % len(sites)] if sites else training_site(seed)) if lvo else None
    if family == "b":
        from lvo_triage.synth_b import render_case, sample_case

        case = sample_case(seed, lvo=lvo, site=site)
        occ = case.occlusion
        volume = render_case(case, voxel_mm=spacing_mm)
        return volume, occ is not None, occ.side if occ else None, occ.site if occ else None
    from lvo_triage.synth import render, sample_spec, training_grid

    spec = sample_spec(seed, case_id=f"s{seed}", lvo=lvo, site=site)
    shape, affine = training_grid(spec, spacing_mm=spacing_mm)
    return render(spec, shape, affine), spec.lvo, spec.side, spec.site


def _make_case(job: Job) -> tuple[np.ndarray, int, int, int, int]:
    assert _worker_pre is not None
    volume, lvo, side, site = _render(job)
    x = _worker_pre(volume)[0]
    q = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return q, int(lvo), int(side == "left"), SITE_CODES[site], job[0]


def build_cases(
    seeds: list[int],
    *,
    spec: InputSpec,
    spacing_mm: float = 1.0,
    workers: int = 2,
    desc: str = "",
    family: str = "a",
    sites: tuple[str, ...] = (),
) -> CaseArrays:
    """Render and preprocess one case per seed of phantom ``family``; labels alternate LVO / no
    LVO for balance. Occlusion sites: :func:`training_site` (M2 over-sampled), or ``sites`` in
    turn by seed."""
    if family not in FAMILIES:
        msg = f"phantom family {family!r}: choose one of {', '.join(FAMILIES)}"
        raise ValueError(msg)
    jobs = [(s, i % 2 == 0, spacing_mm, family, sites) for i, s in enumerate(seeds)]
    out: list[tuple[np.ndarray, int, int, int, int]] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(spec,)) as pool:
        for item in tqdm(pool.imap(_make_case, jobs, chunksize=2), total=len(jobs), desc=desc):
            out.append(item)
    return CaseArrays(
        x=np.stack([o[0] for o in out]),
        lvo=np.array([o[1] for o in out], dtype=np.int64),
        left=np.array([o[2] for o in out], dtype=np.int64),
        site=np.array([o[3] for o in out], dtype=np.int64),
        seeds=np.array([o[4] for o in out], dtype=np.int64),
    )


CHUNK = 500


def cached_cases(
    cache: Path,
    name: str,
    base: int,
    n: int,
    *,
    spec: InputSpec,
    workers: int = 2,
    family: str = "a",
) -> CaseArrays:
    """Cases with seeds ``base .. base+n-1`` of phantom ``family``, built in chunks of ``CHUNK``
    seeds that are kept in ``cache`` (a larger run reuses the chunks of a smaller one; delete the
    folder after changing the phantom or the preprocessing). Family B's chunks are named
    ``b-<name>-...``."""
    name = name if family == "a" else f"{family}-{name}"
    parts = []
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        path = cache / f"{name}-{base + start}-{base + stop}.npz"
        if path.exists():
            parts.append(CaseArrays.load(path))
            continue
        seeds = list(range(base + start, base + stop))
        part = build_cases(
            seeds, spec=spec, workers=workers, desc=f"{name} {start}-{stop}", family=family
        )
        part.save(path)
        parts.append(part)
    return CaseArrays(
        x=np.concatenate([p.x for p in parts]),
        lvo=np.concatenate([p.lvo for p in parts]),
        left=np.concatenate([p.left for p in parts]),
        site=np.concatenate([p.site for p in parts]),
        seeds=np.concatenate([p.seeds for p in parts]),
    )
