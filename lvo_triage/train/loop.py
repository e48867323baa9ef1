"""Training loop: augmentation, validation each epoch, best checkpoint, calibration, metrics CSV."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from lvo_triage.metrics import (
    fit_temperature,
    roc_auc,
    sensitivity_specificity,
    threshold_for_sensitivity,
)
from lvo_triage.model_card import InputSpec
from lvo_triage.preprocess import BONE_LEVEL
from lvo_triage.train.dataset import CaseArrays
from lvo_triage.train.network import SLAB, SLAB_STEP, LvoNet

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 14
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    seed: int = 0
    target_sensitivity: float = 0.95
    max_shift_vox: int = 3
    affine_prob: float = (
        0.3  # random rotation (up to 8 degrees) and scale (spacing jitter 0.92-1.08)
    )
    site_weight: float = 0.5  # weight of the site loss (LVO cases only)
    domain_prob: float = 0.0  # each hospital-like perturbation's probability per case (DOMAIN)
    slab: int = SLAB  # slab MIP thickness, voxels of the 2 mm grid
    slab_step: int = SLAB_STEP  # one slab every this many voxels


# Rotation limits (degrees) about the three axes of affine_grid's coordinates, which run
# (Z, Y, X) of the NCXYZ tensor: the third is the left-right axis. With the midline aligned,
# turning the head about the other two would undo the alignment, so only a residual is left.
FREE_ROTATION = (8.0, 8.0, 8.0)
MIDLINE_ROTATION = (2.0, 2.0, 10.0)


def _random_affine(
    x: torch.Tensor,
    rng: np.random.Generator,
    prob: float,
    keep_midline: bool = False,
    pitch_deg: float | None = None,
) -> torch.Tensor:
    """Each case of the batch (N, 1, X, Y, Z), with probability ``prob``: rotation up to 8 degrees
    about each axis (``keep_midline``: up to 10 degrees about the left-right axis, 2 about the
    others) and isotropic scale 0.92-1.08 (the spacing jitter of another scanner), about the grid
    centre, trilinear, zeros outside; ``pitch_deg``: rotation about the left-right axis only, up
    to that many degrees, without scaling. One ``grid_sample`` call for the whole batch."""
    chosen = [b for b in range(x.shape[0]) if rng.random() < prob]
    if not chosen:
        return x
    limits = np.asarray(MIDLINE_ROTATION if keep_midline else FREE_ROTATION)
    if pitch_deg is not None:
        limits = np.array([0.0, 0.0, pitch_deg])
    thetas = []
    for _ in chosen:
        ax, ay, az = np.radians(rng.uniform(-limits, limits))
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        scale = 1.0 if pitch_deg is not None else float(rng.uniform(0.92, 1.08))
        m = (rx @ ry @ rz) / scale
        thetas.append(np.concatenate([m, np.zeros((3, 1))], axis=1))
    theta = torch.as_tensor(np.stack(thetas), dtype=x.dtype)
    sub = x[chosen]
    grid = F.affine_grid(theta, list(sub.shape), align_corners=False)
    out = x.clone()
    out[chosen] = F.grid_sample(
        sub, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out


# Domain randomisation (``domain_prob``): what hospitals send beyond the phantoms' ranges, each
# drawn with that probability per case, on the model input ([0, 1] over the intensity window).
BRAIN_LEVEL = 0.19  # about 35 HU in the default window (-100 to 600 HU)
CONTRAST = (0.4, 1.2)  # arteries scaled about the brain level: dim (~220 HU) to bright
EXTRA_NOISE = 0.03  # up to about 20 HU of added noise on the 2 mm input
CUT = (0.2, 0.15)  # up to this fraction of the height missing: vertex (top), skull base (bottom)
TILT_DEG = 30.0  # pitch (about the left-right axis), as a gantry tilt or a flexed head gives


def _domain(x: torch.Tensor, rng: np.random.Generator, prob: float) -> torch.Tensor:
    """One case (1, X, Y, Z), each perturbation with probability ``prob``: contrast scaled
    about the brain level (bone kept), extra noise, the vertex or the skull base cut off."""
    if rng.random() < prob:
        k = float(rng.uniform(*CONTRAST))
        soft = (x > BRAIN_LEVEL) & (x < BONE_LEVEL)
        x = torch.where(soft, BRAIN_LEVEL + (x - BRAIN_LEVEL) * k, x)
    if rng.random() < prob:
        x = x + float(rng.uniform(0.0, EXTRA_NOISE)) * torch.randn_like(x)
    if rng.random() < prob:
        depth = x.shape[-1]
        top = rng.random() < 0.5
        n = int(rng.integers(1, max(2, int(depth * CUT[0 if top else 1]) + 1)))
        x = x.clone()
        if top:
            x[..., depth - n :] = 0.0
        else:
            x[..., :n] = 0.0
    return x


def augment(
    x: torch.Tensor,
    left: torch.Tensor,
    rng: np.random.Generator,
    shift: int,
    affine_prob: float = 0.0,
    keep_midline: bool = False,
    domain_prob: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random mirror (swaps the side label), affine, shift, intensity scale/offset and noise.
    ``keep_midline`` (inputs with the midline aligned): no left-right shift, and rotations that
    keep the mid-sagittal plane in place (see :data:`MIDLINE_ROTATION`). ``domain_prob``: domain
    randomisation (:func:`_domain`, and a pitch of up to ``TILT_DEG``), each with that
    probability per case."""
    x = _random_affine(x, rng, affine_prob, keep_midline) if affine_prob else x.clone()
    if domain_prob:
        x = _random_affine(x, rng, domain_prob, keep_midline, pitch_deg=TILT_DEG)
    for b in range(x.shape[0]):
        if domain_prob:
            x[b] = _domain(x[b], rng, domain_prob)
        if rng.random() < 0.5:
            x[b] = torch.flip(x[b], dims=[1])
            if left[b] >= 0:  # -1: side unknown, stays unknown
                left[b] = 1 - left[b]
        if shift:
            s = [int(v) for v in rng.integers(-shift, shift + 1, size=3)]
            if keep_midline:
                s[0] = 0
            x[b] = torch.roll(x[b], shifts=s, dims=(1, 2, 3))
        x[b] = x[b] * float(rng.uniform(0.9, 1.1)) + float(rng.uniform(-0.03, 0.03))
    x = x + 0.01 * torch.randn_like(x)
    return x.clamp_(0.0, 1.0), left


def _to_float(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32) / 255.0)


def predict_logits(
    net: LvoNet, data: CaseArrays, batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LVO logits, side logits and site logits (N, 3) of every case."""
    net.eval()
    lvo, side, site = [], [], []
    with torch.no_grad():
        for i in range(0, len(data.x), batch_size):
            a, b, c = net(_to_float(data.x[i : i + batch_size]))
            lvo.append(a.numpy())
            side.append(b.numpy())
            site.append(c.numpy())
    return np.concatenate(lvo), np.concatenate(side), np.concatenate(site)


def _loss(
    net: LvoNet,
    x: torch.Tensor,
    lvo: torch.Tensor,
    left: torch.Tensor,
    site: torch.Tensor,
    site_weight: float,
) -> torch.Tensor:
    a, b, c = net(x)
    loss = F.binary_cross_entropy_with_logits(a, lvo.float())
    mask = lvo.bool()
    sided = mask & (left >= 0)
    if sided.any():
        loss = loss + F.binary_cross_entropy_with_logits(b[sided], left[sided].float())
    known = mask & (site >= 0)
    if known.any() and site_weight:
        loss = loss + site_weight * F.cross_entropy(c[known], site[known])
    return loss


def _checkpoint(
    net: LvoNet, cfg: TrainConfig, *, epoch: int = 0, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Weights (what export needs) and, for ``last.pt``, what ``resume`` needs."""
    out: dict[str, Any] = {
        "state_dict": net.state_dict(),
        "width": cfg.width,
        "depth": net.depth,
        "slab": net.slab,
        "slab_step": net.slab_step,
    }
    if state is not None:
        out.update(epoch=epoch, **state)
    return out


def _initialise(net: LvoNet, init: Path) -> None:
    """Weights of ``init`` where their shapes fit; what an older checkpoint lacks or has in
    another shape (a head that now reads the vessel counts too) starts fresh."""
    own = net.state_dict()
    given = torch.load(init)["state_dict"]
    fits = {k: v for k, v in given.items() if k in own and own[k].shape == v.shape}
    net.load_state_dict(fits, strict=False)
    fresh = sorted(set(own) - set(fits))
    if fresh:
        log.info("initialised from %s; new parameters: %s", init, ", ".join(fresh))


def balanced_order(lvo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch's case order, drawn so that LVO and non-LVO cases come equally often (with
    replacement from the rarer class when the data are unbalanced)."""
    n = len(lvo)
    pos, neg = np.flatnonzero(lvo == 1), np.flatnonzero(lvo == 0)
    if len(pos) == 0 or len(neg) == 0 or abs(len(pos) - len(neg)) <= 1:
        return rng.permutation(n)
    weights = np.where(lvo == 1, 0.5 / len(pos), 0.5 / len(neg))
    return rng.choice(n, size=n, replace=True, p=weights)


def _validate(net: LvoNet, val: CaseArrays) -> dict[str, float]:
    lvo_logit, side_logit, site_logits = predict_logits(net, val)
    loss = F.binary_cross_entropy_with_logits(
        torch.from_numpy(lvo_logit), torch.from_numpy(val.lvo).float()
    )
    pos = (val.lvo == 1) & (val.left >= 0)
    known = (val.lvo == 1) & (val.site >= 0)
    side_ok = (side_logit[pos] > 0).astype(int) == val.left[pos]
    site_ok = site_logits[known].argmax(axis=1) == val.site[known]
    return {
        "val_loss": round(float(loss), 5),
        "val_auc": round(roc_auc(val.lvo, lvo_logit), 5),
        "val_side_acc": round(float(side_ok.mean()) if pos.any() else float("nan"), 5),
        "val_site_acc": round(float(site_ok.mean()) if known.any() else float("nan"), 5),
    }


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def train(
    train_data: CaseArrays,
    val_data: CaseArrays,
    *,
    spec: InputSpec,
    cfg: TrainConfig,
    out: Path,
    init: Path | None = None,
    resume: bool = False,
) -> dict[str, object]:
    """Train, keep the best epoch by validation AUC (then loss), calibrate; returns the summary.
    ``resume`` continues from ``out/last.pt`` (weights, optimiser, schedule, random state)."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = LvoNet(depth=spec.shape[2], width=cfg.width, slab=cfg.slab, slab_step=cfg.slab_step)
    if init is not None:
        _initialise(net, init)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * int(np.ceil(len(train_data.x) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    best: tuple[float, float] | None = None
    rows: list[dict[str, Any]] = []
    start = 1
    if resume:
        if not (out / "last.pt").exists():
            msg = f"nothing to resume: {out / 'last.pt'} does not exist (start without --resume)"
            raise FileNotFoundError(msg)
        ckpt = torch.load(out / "last.pt", weights_only=False)
        net.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        rows, start = list(ckpt["rows"]), int(ckpt["epoch"]) + 1
        best = tuple(ckpt["best"]) if ckpt["best"] is not None else None  # type: ignore[assignment]
        log.info("resuming at epoch %d of %d", start, cfg.epochs)
    for epoch in range(start, cfg.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = balanced_order(train_data.lvo, rng)
        losses = []
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}")
        for i in bar:
            idx = np.sort(order[i : i + cfg.batch_size])
            x, left = augment(
                _to_float(train_data.x[idx]),
                torch.from_numpy(train_data.left[idx].copy()),
                rng,
                cfg.max_shift_vox,
                cfg.affine_prob,
                keep_midline=spec.align_midline,
                domain_prob=cfg.domain_prob,
            )
            lvo, site = (
                torch.from_numpy(train_data.lvo[idx]),
                torch.from_numpy(train_data.site[idx]),
            )
            loss = _loss(net, x, lvo, left, site, cfg.site_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        row: dict[str, Any] = {"epoch": epoch, "train_loss": round(float(np.mean(losses)), 5)}
        row.update(_validate(net, val_data))
        row["seconds"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        log.info("epoch %s", row)
        key = (row["val_auc"], -row["val_loss"])
        if best is None or key > best:
            best = key
            torch.save(_checkpoint(net, cfg), out / "best.pt")
        state = {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "rows": rows,
            "best": best,
        }
        torch.save(_checkpoint(net, cfg, epoch=epoch, state=state), out / "last.pt")
        _write_csv(out / "metrics.csv", rows)
    return _calibrate(
        net, train_data, val_data, spec=spec, cfg=cfg, out=out, init=init, rows=rows, best=best
    )


def _calibrate(
    net: LvoNet,
    train_data: CaseArrays,
    val_data: CaseArrays,
    *,
    spec: InputSpec,
    cfg: TrainConfig,
    out: Path,
    init: Path | None,
    rows: list[dict[str, Any]],
    best: tuple[float, float] | None,
) -> dict[str, object]:
    """Temperature and operating point on validation data, with the specificity expected there."""
    net.load_state_dict(torch.load(out / "best.pt")["state_dict"])
    lvo_logit, _, _ = predict_logits(net, val_data)
    temperature = fit_temperature(val_data.lvo, lvo_logit)
    p = 1.0 / (1.0 + np.exp(-lvo_logit / temperature))
    threshold = threshold_for_sensitivity(val_data.lvo, p, cfg.target_sensitivity)
    sensitivity, specificity = sensitivity_specificity(val_data.lvo, p, threshold)
    summary: dict[str, object] = {
        "config": asdict(cfg),
        "initialised_from": str(init) if init else None,
        "input": spec.to_dict(),
        "temperature": temperature,
        "threshold": threshold,
        "target_sensitivity": cfg.target_sensitivity,
        "validation_at_threshold": {
            "sensitivity": round(sensitivity, 4),
            "specificity": round(specificity, 4),
        },
        "best_val_auc": best[0] if best else None,
        "n_train": len(train_data.x),
        "n_val": len(val_data.x),
        "train_seeds": [int(train_data.seeds.min()), int(train_data.seeds.max())],
        "val_seeds": [int(val_data.seeds.min()), int(val_data.seeds.max())],
        "epochs": rows,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
