"""The detector: a small 3D CNN that compares each hemisphere with its mirror image.

One encoder E sees the head x and its left-right mirror flip(x). Their feature difference
d = E(x) - E(flip(x)) is zero for a perfectly symmetric head and changes sign when the input is
mirrored. The LVO logit reads |d| (mirror-invariant); the side logit reads the difference of d
between the patient's left and right halves through an odd function (it flips sign with the
input), so a left-right flip swaps the side by construction. Axis 2 of the NCXYZ input runs from
the patient's left (index 0) to the right (RAS orientation).
"""

from __future__ import annotations

import torch
from torch import nn

LR_DIM = 2


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    def __init__(self, *, width: int = 12) -> None:
        super().__init__()
        w = width
        self.layers = nn.Sequential(
            _block(1, w, 2),
            _block(w, 2 * w, 2),
            _block(2 * w, 4 * w, 2),
            _block(4 * w, 4 * w, 1),
            _block(4 * w, 6 * w, 2),
        )
        self.channels = 6 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.layers(x)
        return out


class LvoNet(nn.Module):
    """Returns ``(lvo_logit, side_logit)``; ``side_logit > 0`` means left."""

    def __init__(self, *, width: int = 8, hidden: int = 32) -> None:
        super().__init__()
        if width < 2 or hidden < 2:
            msg = f"width={width} and hidden={hidden} must both be >= 2"
            raise ValueError(msg)
        self.encoder = Encoder(width=width)
        c = self.encoder.channels
        self.lvo_head = nn.Sequential(nn.Linear(3 * c, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.side_head = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = self.encoder(torch.cat([x, torch.flip(x, dims=[LR_DIM])], dim=0))
        f, g = torch.chunk(both, 2, dim=0)
        d = f - g
        half = d.shape[LR_DIM] // 2
        left = d[:, :, :half].mean(dim=(2, 3, 4))
        right = d[:, :, d.shape[LR_DIM] - half :].mean(dim=(2, 3, 4))
        asym = left - right
        lvo_features = torch.cat(
            [d.abs().mean(dim=(2, 3, 4)), d.abs().amax(dim=(2, 3, 4)), asym.abs()], 1
        )
        lvo_logit = self.lvo_head(lvo_features).squeeze(1)
        side_logit = (self.side_head(asym) - self.side_head(-asym)).squeeze(1)
        return lvo_logit, side_logit


class ExportWrapper(nn.Module):
    """What goes into ONNX: calibrated probabilities ``p_lvo`` and ``p_left``."""

    def __init__(self, net: LvoNet, *, temperature: float = 1.0) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("inv_temperature", torch.tensor(1.0 / temperature))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lvo_logit, side_logit = self.net(x)
        inv_t: torch.Tensor = self.inv_temperature  # type: ignore[assignment]
        return torch.sigmoid(lvo_logit * inv_t), torch.sigmoid(side_logit)
