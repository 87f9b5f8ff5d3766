"""Mask losses: focal and dice per mask, the minimum over a prompt's masks, IoU MSE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
               gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss, mean over pixels. logits, target: ... x H x W (target in [0, 1],
    soft at edges). Returns ... (one value per mask)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = loss * (alpha * target + (1 - alpha) * (1 - target))
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice. logits, target: ... x H x W -> ..."""
    p = torch.sigmoid(logits).flatten(-2)
    t = target.flatten(-2)
    return 1 - (2 * (p * t).sum(-1) + eps) / (p.sum(-1) + t.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of (logits > 0) with (target > 0.5); ... x H x W -> ... (empty vs empty = 1)."""
    pred = (logits > 0).flatten(-2)
    gt = (target > 0.5).flatten(-2)
    inter = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@dataclass(frozen=True)
class StepLoss:
    total: torch.Tensor  # scalar, with gradient
    focal: float
    dice: float
    iou_mse: float
    best: torch.Tensor  # P: index of the minimum-loss mask
    iou: torch.Tensor  # P: true IoU of that mask


def prompt_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor,
                focal_w: float, dice_w: float, iou_w: float,
                focal_alpha: float = 0.25) -> StepLoss:
    """logits P x M x L x L (already at the loss size), iou_pred P x M, target P x L x L.
    Only the minimum-loss mask of each prompt gets the mask gradient; every mask's IoU
    prediction is regressed onto its own true IoU."""
    t = target.unsqueeze(1).expand_as(logits)
    focal = focal_loss(logits.float(), t, alpha=focal_alpha)
    dice = dice_loss(logits.float(), t)
    per_mask = focal_w * focal + dice_w * dice  # P x M
    best = per_mask.detach().argmin(1)
    rows = torch.arange(len(best), device=best.device)
    with torch.no_grad():
        true_iou = mask_iou(logits, t)
    iou_mse = F.mse_loss(iou_pred.float(), true_iou)
    total = per_mask[rows, best].mean() + iou_w * iou_mse
    return StepLoss(total, float(focal[rows, best].mean().detach()),
                    float(dice[rows, best].mean().detach()), float(iou_mse.detach()), best,
                    true_iou[rows, best])
