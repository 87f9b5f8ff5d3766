"""The detector's network and its box coding (plain torch).

Frames: the SAM image embedding (C x E x E) covers the model's input frame (image_size x
image_size, the image resized by its longest side and padded right / bottom). The head's
output grid is G = E * upsample cells of `cell = image_size / G` input pixels. An object is
coded at the cell holding its box centre: the heat map's target is a Gaussian peak there,
`size` holds log(box width / cell), log(box height / cell) and `offset` the centre's place
inside the cell (0..1, x then y).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import DetectorConfig

PRIOR = 0.01  # initial objectness probability, so the first steps are not swamped by negatives


class DetectorHead(nn.Module):
    """B x C x E x E embedding -> (heat logits B x 1 x G x G, size B x 2 x G x G,
    offset B x 2 x G x G)."""

    def __init__(self, in_channels: int, cfg: DetectorConfig) -> None:
        super().__init__()
        self.upsample = cfg.upsample
        h = cfg.hidden
        layers: list[nn.Module] = [nn.Conv2d(in_channels, h, 1), nn.GroupNorm(8, h), nn.GELU()]
        for _ in range(cfg.layers):
            layers += [nn.Conv2d(h, h, 3, padding=1), nn.GroupNorm(8, h), nn.GELU()]
        self.trunk = nn.Sequential(*layers)
        self.refine = nn.Sequential(nn.Conv2d(h, h, 3, padding=1), nn.GELU())
        self.heat = nn.Conv2d(h, 1, 1)
        self.box = nn.Conv2d(h, 4, 1)
        nn.init.constant_(self.heat.bias, float(torch.log(torch.tensor(PRIOR / (1 - PRIOR)))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.trunk(x)
        if self.upsample > 1:
            y = F.interpolate(y, scale_factor=self.upsample, mode="bilinear",
                              align_corners=False)
        y = self.refine(y)
        box = self.box(y)
        return self.heat(y), box[:, :2], box[:, 2:].sigmoid()


@dataclass(frozen=True)
class Targets:
    """What one image's boxes ask of the head on a G x G grid."""

    heat: torch.Tensor  # G x G float, 1 at the centre cells, Gaussian around
    index: torch.Tensor  # N int64, flat centre cell (y * G + x) of each box
    size: torch.Tensor  # N x 2 float, log(w / cell), log(h / cell)
    offset: torch.Tensor  # N x 2 float, centre inside its cell, 0..1
    hard: torch.Tensor  # G x G float, Gaussian bumps at the negatives' centres (0..1)


def _gaussians(centres: torch.Tensor, sigmas: torch.Tensor, grid: int) -> torch.Tensor:
    """Max over N Gaussians (centres N x 2 in cells, x then y; sigmas N) -> G x G."""
    out = torch.zeros(grid, grid)
    if len(centres) == 0:
        return out
    ys = torch.arange(grid, dtype=torch.float32)[:, None]
    xs = torch.arange(grid, dtype=torch.float32)[None, :]
    for (cx, cy), s in zip(centres.tolist(), sigmas.tolist(), strict=True):
        ix, iy = int(cx), int(cy)
        g = torch.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * s * s))
        out = torch.maximum(out, g)
    return out


def encode_targets(boxes: torch.Tensor, negatives: torch.Tensor, grid: int, cell: float,
                   sigma_fraction: float) -> Targets:
    """boxes N x 4 and negatives M x 4, XYXY input-frame pixels -> Targets."""
    boxes = boxes.float().reshape(-1, 4)
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0) / cell
    centres = ((boxes[:, :2] + boxes[:, 2:]) / 2 / cell).clamp(0, grid - 1e-3)
    sig = (sigma_fraction * wh.min(1).values).clamp(min=0.5)
    heat = _gaussians(centres, sig, grid)
    cells = centres.floor().long()
    index = cells[:, 1] * grid + cells[:, 0]
    heat.view(-1)[index] = 1.0
    neg = negatives.float().reshape(-1, 4)
    nwh = (neg[:, 2:] - neg[:, :2]).clamp(min=1.0) / cell
    ncentres = ((neg[:, :2] + neg[:, 2:]) / 2 / cell).clamp(0, grid - 1e-3)
    hard = _gaussians(ncentres, (sigma_fraction * nwh.min(1).values).clamp(min=0.5), grid)
    return Targets(heat=heat, index=index, size=wh.log(), offset=centres - cells.float(),
                   hard=hard)


@dataclass(frozen=True)
class Detection:
    """A detected object: box XYXY (the frame asked for) and objectness score 0..1."""

    box: tuple[float, float, float, float]
    score: float


@torch.no_grad()
def decode_detections(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, *,
                      cell: float, input_size: tuple[int, int], scale: tuple[float, float],
                      max_detections: int, min_score: float = 0.0) -> list[Detection]:
    """One image's head outputs (1 x G x G, 2 x G x G, 2 x G x G) -> detections, best first,
    in the original image frame (input-frame x, y pixels / `scale` (sx, sy)). Peaks are the
    cells that are the maximum of their 3x3 neighbourhood; cells over the padding (outside
    `input_size`, h x w of the resized image) are ignored."""
    prob = heat.sigmoid()[0]
    grid = prob.shape[-1]
    peaks = prob == F.max_pool2d(prob[None, None], 3, stride=1, padding=1)[0, 0]
    h_in, w_in = input_size
    centre = (torch.arange(grid, dtype=torch.float32) + 0.5) * cell
    inside = (centre[:, None] < h_in) & (centre[None, :] < w_in)
    score = torch.where(peaks & inside, prob, torch.zeros_like(prob)).flatten()
    k = min(max_detections, int((score > min_score).sum()))
    top = torch.topk(score, k).indices if k else torch.zeros(0, dtype=torch.long)
    out = []
    for i in top.tolist():
        y, x = divmod(i, grid)
        cx = (x + float(offset[0, y, x])) * cell
        cy = (y + float(offset[1, y, x])) * cell
        w = float(size[0, y, x].clamp(max=10).exp()) * cell
        h = float(size[1, y, x].clamp(max=10).exp()) * cell
        x0, y0 = max(cx - w / 2, 0.0), max(cy - h / 2, 0.0)
        x1, y1 = min(cx + w / 2, float(w_in)), min(cy + h / 2, float(h_in))
        sx, sy = scale
        out.append(Detection(box=(x0 / sx, y0 / sy, x1 / sx, y1 / sy),
                             score=float(score[i])))
    return out
