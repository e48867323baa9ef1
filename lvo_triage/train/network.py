"""The detector: slab MIPs of the head, compared with their mirror image by a small 2D CNN.

Front end (inside the model, so ONNX carries it): bone (the top of the intensity window) and a
one-voxel rim around it are set to zero, then thick slab maximum intensity projections along the
head's superior axis make the contrast-filled arteries stand out, as a radiologist's MIPs do.

Comparison: one encoder E sees the slab stack m and its left-right mirror flip(m). Their feature
difference d = E(m) - E(flip(m)) is zero for a perfectly symmetric head and changes sign when the
input is mirrored. The LVO logit reads |d| (mirror-invariant); the side logit reads the difference
of d between the patient's left and right halves through an odd function (it flips sign with the
input), so a left-right flip swaps the side by construction. The site logits (ICA-T, M1, M2) read
the same mirror-invariant features as the LVO logit. Axis 2 of the NCXYZ input runs from
the patient's left (index 0) to the right (RAS orientation).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lvo_triage.preprocess import BONE_LEVEL

LR_DIM = 2
SITES = ("ICA-T", "M1", "M2")
SLAB, SLAB_STEP = 8, 4  # voxels: the first bundled detector's 16 mm slabs every 8 mm


def n_slabs(depth: int, slab: int = SLAB, step: int = SLAB_STEP) -> int:
    if slab < 1 or step < 1:
        msg = f"slab={slab} and step={step} must both be >= 1 voxel"
        raise ValueError(msg)
    if depth < slab:
        msg = f"input depth {depth} must be at least {slab} voxels"
        raise ValueError(msg)
    return (depth - slab) // step + 1


def slab_mips(x: torch.Tensor, slab: int = SLAB, step: int = SLAB_STEP) -> torch.Tensor:
    """(N, 1, X, Y, Z) in [0, 1] → (N, slabs, X, Y): bone removed, slab MIPs along Z
    (``slab`` voxels thick, one every ``step`` voxels)."""
    bone = (x >= BONE_LEVEL).to(x.dtype)
    rim = F.max_pool3d(bone, kernel_size=3, stride=1, padding=1)
    soft = x * (1.0 - rim)
    mips = F.max_pool3d(soft, kernel_size=(1, 1, slab), stride=(1, 1, step))
    return mips[:, 0].permute(0, 3, 1, 2)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    def __init__(self, *, slabs: int, width: int) -> None:
        super().__init__()
        w = width
        self.layers = nn.Sequential(
            _block(slabs, 2 * w, 1),
            _block(2 * w, 2 * w, 2),
            _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 1),
            _block(4 * w, 6 * w, 2),
            _block(6 * w, 6 * w, 1),
        )
        self.channels = 6 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


class LvoNet(nn.Module):
    """Returns ``(lvo_logit, side_logit, site_logits)``; ``side_logit > 0`` means left;
    ``site_logits`` (N, 3) score the sites of ``SITES``."""

    def __init__(
        self,
        *,
        depth: int,
        width: int = 16,
        hidden: int = 32,
        slab: int = SLAB,
        slab_step: int = SLAB_STEP,
    ) -> None:
        super().__init__()
        if width < 2 or hidden < 2:
            msg = f"width={width} and hidden={hidden} must both be >= 2"
            raise ValueError(msg)
        self.depth, self.slab, self.slab_step = depth, slab, slab_step
        self.encoder = Encoder(slabs=n_slabs(depth, slab, slab_step), width=width)
        c = self.encoder.channels
        self.lvo_head = nn.Sequential(nn.Linear(3 * c, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.side_head = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.site_head = nn.Sequential(
            nn.Linear(3 * c, hidden), nn.ReLU(), nn.Linear(hidden, len(SITES))
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = slab_mips(x, self.slab, self.slab_step)
        both = self.encoder(torch.cat([m, torch.flip(m, dims=[LR_DIM])], dim=0))
        f, g = torch.chunk(both, 2, dim=0)
        d = f - g
        half = d.shape[LR_DIM] // 2
        left = d[:, :, :half].mean(dim=(2, 3))
        right = d[:, :, d.shape[LR_DIM] - half :].mean(dim=(2, 3))
        asym = left - right
        pooled = torch.cat([d.abs().mean(dim=(2, 3)), d.abs().amax(dim=(2, 3)), asym.abs()], 1)
        lvo_logit = self.lvo_head(pooled).squeeze(1)
        side_logit = (self.side_head(asym) - self.side_head(-asym)).squeeze(1)
        return lvo_logit, side_logit, self.site_head(pooled)


class ExportWrapper(nn.Module):
    """What goes into ONNX: calibrated ``p_lvo``, ``p_left`` and ``p_site`` (N, 3; softmax over
    ``SITES``, meaningful when an LVO is suspected)."""

    def __init__(self, net: LvoNet, *, temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("inv_temperature", torch.tensor(1.0 / temperature))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lvo_logit, side_logit, site_logits = self.net(x)
        inv_t: torch.Tensor = self.inv_temperature  # type: ignore[assignment]
        return (
            torch.sigmoid(lvo_logit * inv_t),
            torch.sigmoid(side_logit),
            torch.softmax(site_logits, dim=1),
        )
