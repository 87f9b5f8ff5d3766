"""Training the detector head on cached image embeddings: CenterNet's penalty-reduced focal
loss on the heat map (positives at box centres; rejected pre-fills weigh more as negatives)
and L1 on the log size and the centre offset at the centre cells."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..threads import single_threaded
from .config import DetectorConfig
from .head import DetectorHead, Targets, encode_targets


@dataclass(frozen=True)
class DetectorSample:
    """One image: its embedding C x E x E (any float dtype), the boxes of its accepted
    masks and of its rejected pre-fills (N x 4 / M x 4, XYXY input-frame pixels), and the
    resized image's size (h, w) inside the image_size x image_size input frame."""

    embedding: torch.Tensor
    boxes: torch.Tensor
    negatives: torch.Tensor
    input_size: tuple[int, int]


def focal_loss(logits: torch.Tensor, target: torch.Tensor, hard: torch.Tensor,
               negative_weight: float) -> torch.Tensor:
    """Penalty-reduced focal loss (alpha 2, beta 4), summed; all B x G x G."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target >= 1.0
    pos_loss = -((1 - p) ** 2) * torch.log(p)
    neg_loss = -((1 - target) ** 4) * p ** 2 * torch.log(1 - p) * (1 + negative_weight * hard)
    return torch.where(pos, pos_loss, neg_loss).sum()


def _flipped(sample: DetectorSample, image_size: int) -> DetectorSample:
    def flip(b: torch.Tensor) -> torch.Tensor:
        return torch.stack([image_size - b[:, 2], b[:, 1], image_size - b[:, 0], b[:, 3]], 1)

    return DetectorSample(sample.embedding.flip(-1), flip(sample.boxes),
                          flip(sample.negatives), sample.input_size)


def train_detector_head(
    samples: Sequence[DetectorSample], image_size: int, cfg: DetectorConfig, *,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[DetectorHead, dict]:
    """Train a head on `samples` (at least one box among them) -> (head in eval mode,
    figures: steps, final loss, seconds, images, boxes, negatives). Runs on one CPU thread:
    the head's layers are too small to gain from more, and a loaded machine makes more
    threads much slower."""
    with single_threaded():
        return _train(samples, image_size, cfg, on_step)


def _train(samples: Sequence[DetectorSample], image_size: int, cfg: DetectorConfig,
           on_step: Callable[[int, float], None] | None) -> tuple[DetectorHead, dict]:
    if not samples or not any(len(s.boxes) for s in samples):
        raise ValueError("the detector needs at least one box to train on")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    channels, embed = samples[0].embedding.shape[0], samples[0].embedding.shape[-1]
    grid = embed * cfg.upsample
    cell = image_size / grid
    head = DetectorHead(channels, cfg)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = max(1, cfg.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return cfg.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, cfg.steps - warmup)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))

    plain = [encode_targets(s.boxes, s.negatives, grid, cell, cfg.sigma_fraction)
             for s in samples]
    flipped = ([encode_targets(f.boxes, f.negatives, grid, cell, cfg.sigma_fraction)
                for f in (_flipped(s, image_size) for s in samples)] if cfg.flip else plain)
    head.train()
    t0 = time.perf_counter()
    loss_value = float("nan")
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = torch.randint(len(samples), (min(cfg.batch_size, len(samples)),), generator=gen)
        flips = (torch.rand(len(idx), generator=gen) < 0.5) if cfg.flip else torch.zeros(
            len(idx), dtype=torch.bool)
        x = torch.stack([samples[i].embedding.float().flip(-1) if f else
                         samples[i].embedding.float()
                         for i, f in zip(idx.tolist(), flips.tolist(), strict=True)])
        targets = [(flipped if f else plain)[i]
                   for i, f in zip(idx.tolist(), flips.tolist(), strict=True)]
        heat, size, offset = head(x)
        loss = _loss(heat, size, offset, targets, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        if on_step is not None:
            on_step(step + 1, loss_value)
    head.eval()
    figures = {"steps": cfg.steps, "loss": round(loss_value, 4),
               "seconds": round(time.perf_counter() - t0, 1), "images": len(samples),
               "boxes": int(sum(len(s.boxes) for s in samples)),
               "negatives": int(sum(len(s.negatives) for s in samples))}
    return head, figures


def _loss(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor,
          targets: list[Targets], cfg: DetectorConfig) -> torch.Tensor:
    target = torch.stack([t.heat for t in targets])
    hard = torch.stack([t.hard for t in targets])
    n_pos = max(1, sum(len(t.index) for t in targets))
    loss = focal_loss(heat[:, 0], target, hard, cfg.negative_weight)
    reg = heat.new_zeros(())
    for b, t in enumerate(targets):
        if len(t.index) == 0:
            continue
        s = size[b].flatten(1)[:, t.index].T  # N x 2
        o = offset[b].flatten(1)[:, t.index].T
        reg = reg + cfg.size_weight * (s - t.size).abs().sum() + \
            cfg.offset_weight * (o - t.offset).abs().sum()
    return (loss + reg) / n_pos
