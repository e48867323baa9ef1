"""The detector: slab MIPs of the head, compared with their mirror image by a small 2D CNN.

Front end (inside the model, so ONNX carries it): bone (the top of the intensity window) and a
one-voxel rim around it are set to zero, then thick slab maximum intensity projections along the
head's superior axis make the contrast-filled arteries stand out, as a radiologist's MIPs do.

Comparison: one encoder E sees the slab stack m and its left-right mirror flip(m). Their feature
difference d = E(m) - E(flip(m)) is zero for a perfectly symmetric head and changes sign when the
input is mirrored. The LVO logit reads |d| (mirror-invariant); the side logit reads the difference
of d between the patient's left and right halves through an odd function (it flips sign with the
input), so a left-right flip swaps the side by construction.

Vessel counts (:class:`VesselCounts`): beside the CNN, each slab's opacified fraction (a soft
threshold, learned per slab) is pooled over regions of each hemisphere, and the signed difference
(left - right) / (left + right) of every slab and region goes to the side logit (odd) and, as its
magnitude, to the LVO and site logits. An occlusion is a territory's net deficit of vessels, while
no two hemispheres' vessel trees are mirror images voxel by voxel, so |d| is large in every head.
Trained from scratch on phantoms whose occlusions were 45 % M2 (faint on a 2 mm grid), the LVO
loss stayed at chance without the counts while the side head learned; with them the LVO logit
starts from what the non-learned baseline sees, and it learned. The site logits (ICA-T,
M1, M2) read the same mirror-invariant features as the LVO logit. Axis 2 of the NCXYZ input runs
from the patient's left (index 0) to the right (RAS orientation).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lvo_triage.preprocess import BONE_LEVEL

LR_DIM = 2
SITES = ("ICA-T", "M1", "M2")
SLAB, SLAB_STEP = 8, 4  # voxels: the first bundled detector's 16 mm slabs every 8 mm
COUNT_REGIONS = (2, 4)  # one hemisphere of a slab: medial/lateral x four front-to-back regions
VESSEL_LEVEL = 0.3  # initial soft threshold of a vessel, of the intensity window (about 110 HU)
SHARPNESS = 30.0  # of the soft threshold, per unit of the window
COUNT_EPS = 0.01  # of a region: keeps the ratio of a region without vessels near 0


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


class VesselCounts(nn.Module):
    """(N, slabs, X, Y) slab MIPs → (N, slabs * regions): per slab and region of the left
    hemisphere, (left - right) / (left + right) of the soft-thresholded vessel fraction, the right
    hemisphere mirrored onto the left. Mirroring the input changes the sign of every value."""

    def __init__(self, slabs: int) -> None:
        super().__init__()
        self.level = nn.Parameter(torch.full((1, slabs, 1, 1), VESSEL_LEVEL))
        self.features = slabs * COUNT_REGIONS[0] * COUNT_REGIONS[1]

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        v = torch.sigmoid((m - self.level) * SHARPNESS)
        half = v.shape[LR_DIM] // 2
        left = F.adaptive_avg_pool2d(v[:, :, :half], COUNT_REGIONS)
        right = F.adaptive_avg_pool2d(torch.flip(v, dims=[LR_DIM])[:, :, :half], COUNT_REGIONS)
        return ((left - right) / (left + right + COUNT_EPS)).flatten(1)


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
        slabs = n_slabs(depth, slab, slab_step)
        self.encoder = Encoder(slabs=slabs, width=width)
        self.counts = VesselCounts(slabs)
        c, k = self.encoder.channels, self.counts.features
        self.lvo_head = nn.Sequential(nn.Linear(3 * c + k, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.side_head = nn.Sequential(nn.Linear(c + k, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.site_head = nn.Sequential(
            nn.Linear(3 * c + k, hidden), nn.ReLU(), nn.Linear(hidden, len(SITES))
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = slab_mips(x, self.slab, self.slab_step)
        both = self.encoder(torch.cat([m, torch.flip(m, dims=[LR_DIM])], dim=0))
        f, g = torch.chunk(both, 2, dim=0)
        d = f - g
        half = d.shape[LR_DIM] // 2
        left = d[:, :, :half].mean(dim=(2, 3))
        right = d[:, :, d.shape[LR_DIM] - half :].mean(dim=(2, 3))
        counts = self.counts(m)
        asym = torch.cat([left - right, counts], 1)
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
