"""Simulated interactive prompting, as in the paper's training recipe.

One interaction per target mask: a first prompt (a point uniform in the mask, or the
mask's box with noise), then corrective points sampled uniformly from the error region of
the previous best prediction (missed pixel -> positive point, spurious pixel -> negative
point) with that prediction's logits fed back as the mask prompt, plus iterations that add
no point (one at a random position, one last). Every iteration contributes a loss.

Frames: points and boxes are (x, y) pixels in the input frame (S x S); targets and error
regions live on the loss grid (L x L, L divides S).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..modeling import Sam
from .batch import Batch
from .losses import StepLoss, prompt_loss


def sample_points(region: torch.Tensor, image_size: int, gen: torch.Generator) -> torch.Tensor:
    """One point uniform in each region. region: P x L x L bool (non-empty rows, else an
    arbitrary cell). Returns P x 2 float (x, y) input-frame pixels, uniform inside the cell."""
    p, side = region.shape[0], region.shape[-1]
    score = torch.rand(region.shape, generator=gen, device=region.device) + region * 2.0
    flat = score.flatten(1).argmax(1)
    cell = torch.stack([flat % side, flat // side], dim=1).float()
    u = torch.rand(p, 2, generator=gen, device=region.device)
    return (cell + u) * (image_size / side) - 0.5


def noisy_boxes(boxes: torch.Tensor, image_size: int, gen: torch.Generator,
                rel_std: float = 0.1, max_px: float = 20.0) -> torch.Tensor:
    """P x 4 (x0, y0, x1, y1) -> each coordinate moved by N(0, (rel_std * side)^2), at most
    max_px, kept inside the image and ordered."""
    side = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1).repeat(1, 2)
    noise = torch.randn(boxes.shape, generator=gen, device=boxes.device) * rel_std * side
    out = (boxes + noise.clamp(-max_px, max_px)).clamp(0, image_size - 1)
    x0, x1 = torch.minimum(out[:, 0], out[:, 2]), torch.maximum(out[:, 0], out[:, 2])
    y0, y1 = torch.minimum(out[:, 1], out[:, 3]), torch.maximum(out[:, 1], out[:, 3])
    return torch.stack([x0, y0, x1, y1], 1)


def schedule(points: int, mask_only: int, gen: torch.Generator) -> list[bool]:
    """For iterations 1..points+mask_only: True = add a corrective point. The last iteration
    and (mask_only - 1) random earlier ones add none."""
    n = points + mask_only
    plan = [True] * n
    if mask_only:
        plan[-1] = False
        order = torch.randperm(max(n - 1, 0), generator=gen).tolist()
        for i in order[: mask_only - 1]:
            plan[i] = False
    return plan


@dataclass(frozen=True)
class InteractionResult:
    loss: torch.Tensor  # scalar, mean over iterations
    focal: float
    dice: float
    iou_mse: float
    first_iou: float  # mean IoU of the best mask after the first prompt
    last_iou: float  # after the last iteration
    hinted: bool = False  # the first prompt carried the true mask (mask_hint)


def interactive_rollout(
    model: Sam, embeddings: torch.Tensor, batch: Batch, *, points: int, mask_only: int,
    box_prob: float, weights: tuple[float, float, float], gen: torch.Generator,
    grad_iterations: int = 0, mask_hint: float = 0.0, focal_alpha: float = 0.25,
) -> InteractionResult:
    """Run the interaction for every target of `batch` on `embeddings` (B x C x E x E, with
    gradient if the encoder trains). weights = (focal, dice, iou).

    grad_iterations > 0: only the first iteration and (grad_iterations - 1) random others
    are differentiated; the rest run without autograd (a cheap forward that still moves
    the interaction on). Decoder passes dominate training cost, so this buys steps."""
    s = model.config.image_size
    dev = embeddings.device
    targets = batch.targets.to(dev)
    gt = targets > 0.5
    side = targets.shape[-1]
    p = len(targets)
    rows = torch.arange(p, device=dev)
    emb = embeddings[batch.image_index.to(dev)]
    is_box = torch.rand(p, generator=gen, device=dev) < box_prob
    groups = [(torch.nonzero(~is_box).flatten(), False), (torch.nonzero(is_box).flatten(), True)]
    boxes = noisy_boxes(batch.boxes.to(dev), s, gen)
    # Column 0 is the first point; box prompts skip it (their first prompt is the box).
    coords = sample_points(gt, s, gen)[:, None]
    labels = torch.ones(p, 1, dtype=torch.int, device=dev)
    prev: torch.Tensor | None = None
    hinted = False
    if mask_hint and float(torch.rand(1, generator=gen, device=dev)) < mask_hint:
        # Warm start: the ground truth, coarsened, as the first mask prompt. The dense path
        # is local, so the decoder learns to emit masks at once; the prompt-to-location path
        # that points need then has a working output head to feed.
        low = model.config.low_res_size
        prev = (F.adaptive_avg_pool2d(targets[:, None], low) * 8 - 4).detach()
        hinted = True
    results: list[StepLoss] = []
    plan = [True] + schedule(points, mask_only, gen)
    with_grad = set(range(len(plan)))
    if grad_iterations:
        rest = (torch.randperm(len(plan) - 1, generator=gen) + 1).tolist()
        with_grad = {0, *rest[: grad_iterations - 1]}
    for it, add_point in enumerate(plan):
        if it > 0 and add_point:
            pred = F.interpolate(prev, (side, side), mode="bilinear", align_corners=False)[:, 0] > 0
            err = pred ^ gt
            # No error left: a positive point inside the mask keeps the prompt count even.
            region = torch.where(err.flatten(1).any(1)[:, None, None], err, gt)
            new = sample_points(region, s, gen)
            lab = gt.flatten(1)[rows, _cell_index(new, s, side)].int()
            coords = torch.cat([coords, new[:, None]], 1)
            labels = torch.cat([labels, lab[:, None]], 1)
        multimask = it == 0
        outs = []
        ctx = contextlib.nullcontext() if it in with_grad else torch.no_grad()
        for idx, box in groups:
            if len(idx) == 0:
                continue
            start = 1 if box else 0
            pts = None
            if coords.shape[1] > start:
                pts = (coords[idx, start:], labels[idx, start:])
            with ctx:
                low_logits, iou_pred = model.decode(
                    emb[idx], pts, boxes[idx] if box else None,
                    None if prev is None else prev[idx], multimask)
            outs.append((idx, low_logits, iou_pred))
        order = torch.cat([o[0] for o in outs])
        inv = torch.argsort(order)
        logits = torch.cat([o[1] for o in outs])[inv]
        iou = torch.cat([o[2] for o in outs])[inv]
        up = logits if logits.shape[-1] == side else F.interpolate(
            logits, (side, side), mode="bilinear", align_corners=False)
        res = prompt_loss(up, iou, targets, *weights, focal_alpha=focal_alpha)
        if it in with_grad:
            results.append(res)
        last = res
        prev = logits[rows, res.best].detach()[:, None]
    n = len(results)
    return InteractionResult(
        loss=sum(r.total for r in results) / n,
        focal=sum(r.focal for r in results) / n,
        dice=sum(r.dice for r in results) / n,
        iou_mse=sum(r.iou_mse for r in results) / n,
        first_iou=float(results[0].iou.mean()),
        last_iou=float(last.iou.mean()),
        hinted=hinted,
    )


def _cell_index(xy: torch.Tensor, image_size: int, side: int) -> torch.Tensor:
    """P x 2 input-frame (x, y) -> flat index on the L x L loss grid."""
    cell = ((xy + 0.5) * (side / image_size)).long().clamp(0, side - 1)
    return cell[:, 1] * side + cell[:, 0]
