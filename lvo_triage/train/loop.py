"""Training loop: augmentation, validation each epoch, best checkpoint, calibration, metrics CSV."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from lvo_triage.metrics import fit_temperature, roc_auc, threshold_for_sensitivity
from lvo_triage.model_card import InputSpec
from lvo_triage.train.dataset import CaseArrays
from lvo_triage.train.network import LvoNet

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


def augment(
    x: torch.Tensor, left: torch.Tensor, rng: np.random.Generator, shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random mirror (swaps the side label), shift, intensity scale/offset and noise."""
    x = x.clone()
    for b in range(x.shape[0]):
        if rng.random() < 0.5:
            x[b] = torch.flip(x[b], dims=[1])
            left[b] = 1 - left[b]
        if shift:
            s = [int(v) for v in rng.integers(-shift, shift + 1, size=3)]
            x[b] = torch.roll(x[b], shifts=s, dims=(1, 2, 3))
        x[b] = x[b] * float(rng.uniform(0.9, 1.1)) + float(rng.uniform(-0.03, 0.03))
    x = x + 0.01 * torch.randn_like(x)
    return x.clamp_(0.0, 1.0), left


def _to_float(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x.astype(np.float32) / 255.0)


def predict_logits(
    net: LvoNet, data: CaseArrays, batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    net.eval()
    lvo, side = [], []
    with torch.no_grad():
        for i in range(0, len(data.x), batch_size):
            a, b = net(_to_float(data.x[i : i + batch_size]))
            lvo.append(a.numpy())
            side.append(b.numpy())
    return np.concatenate(lvo), np.concatenate(side)


def _loss(net: LvoNet, x: torch.Tensor, lvo: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    a, b = net(x)
    loss = F.binary_cross_entropy_with_logits(a, lvo.float())
    mask = lvo.bool()
    if mask.any():
        loss = loss + F.binary_cross_entropy_with_logits(b[mask], left[mask].float())
    return loss


def _checkpoint(net: LvoNet, cfg: TrainConfig) -> dict[str, object]:
    return {"state_dict": net.state_dict(), "width": cfg.width, "depth": net.depth}


def train(
    train_data: CaseArrays,
    val_data: CaseArrays,
    *,
    spec: InputSpec,
    cfg: TrainConfig,
    out: Path,
    init: Path | None = None,
) -> dict[str, object]:
    """Train, keep the best epoch by validation AUC (then loss), calibrate; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = LvoNet(depth=spec.shape[2], width=cfg.width)
    if init is not None:
        net.load_state_dict(torch.load(init)["state_dict"])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * int(np.ceil(len(train_data.x) / cfg.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    best: tuple[float, float] | None = None
    rows = []
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        order = rng.permutation(len(train_data.x))
        losses = []
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}")
        for i in bar:
            idx = np.sort(order[i : i + cfg.batch_size])
            x, left = augment(
                _to_float(train_data.x[idx]),
                torch.from_numpy(train_data.left[idx].copy()),
                rng,
                cfg.max_shift_vox,
            )
            loss = _loss(net, x, torch.from_numpy(train_data.lvo[idx]), left)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        lvo_logit, side_logit = predict_logits(net, val_data)
        val_loss = float(
            F.binary_cross_entropy_with_logits(
                torch.from_numpy(lvo_logit), torch.from_numpy(val_data.lvo).float()
            )
        )
        auc = roc_auc(val_data.lvo, lvo_logit)
        pos = val_data.lvo == 1
        side_acc = float(((side_logit[pos] > 0).astype(int) == val_data.left[pos]).mean())
        row = {
            "epoch": epoch,
            "train_loss": round(float(np.mean(losses)), 5),
            "val_loss": round(val_loss, 5),
            "val_auc": round(auc, 5),
            "val_side_acc": round(side_acc, 5),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        rows.append(row)
        log.info("epoch %s", row)
        key = (auc, -val_loss)
        if best is None or key > best:
            best = key
            torch.save(_checkpoint(net, cfg), out / "best.pt")
        torch.save(_checkpoint(net, cfg), out / "last.pt")
        with (out / "metrics.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(rows)

    net.load_state_dict(torch.load(out / "best.pt")["state_dict"])
    lvo_logit, side_logit = predict_logits(net, val_data)
    temperature = fit_temperature(val_data.lvo, lvo_logit)
    p = 1.0 / (1.0 + np.exp(-lvo_logit / temperature))
    threshold = threshold_for_sensitivity(val_data.lvo, p, cfg.target_sensitivity)
    summary: dict[str, object] = {
        "config": asdict(cfg),
        "initialised_from": str(init) if init else None,
        "input": spec.to_dict(),
        "temperature": temperature,
        "threshold": threshold,
        "target_sensitivity": cfg.target_sensitivity,
        "best_val_auc": best[0] if best else None,
        "n_train": len(train_data.x),
        "n_val": len(val_data.x),
        "train_seeds": [int(train_data.seeds.min()), int(train_data.seeds.max())],
        "val_seeds": [int(val_data.seeds.min()), int(val_data.seeds.max())],
        "epochs": rows,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
