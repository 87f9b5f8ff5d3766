"""Fit the IoU head again on the answers a model gives with the focus pass.

The IoU head (the decoder's small MLP that predicts each candidate mask's IoU) learned on
whole images. The focus pass (`maskengine.focus`) answers small objects on zoomed crops,
where the head ranks its candidates less well (the bundled `tiny`: correlation of predicted
and true IoU 0.80 over whole-image answers, 0.68 over crop answers). Only the head changes
here; every mask stays bit for bit what it was.

  1. Collect, on synthetic scenes of a training seed, the first click on each object (the
     evaluation protocol's click) answered on the whole image, and again on the focus crop
     when the answer is small: the head's input (the decoder's IoU-token output) and the
     true IoU of each of the decoder's mask tokens (the single-mask token too, which later
     clicks and the generator's single-mask prompts use).
  2. Fit the head to the true IoUs (mean squared error, as SAM trains it), starting from the
     trained head, with early stopping on the correlation measured on scenes of a separate
     seed: the mean of the whole-image correlation and of the one over the answers the
     focus pass returns.

    python -m maskengine.training.iou_head --out runs/iou_head/tiny
writes OUT.pt (the whole model's weights, the new head in them) and OUT.json (settings,
the correlations before and after, the curve).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_open, write_atomic
from ..focus import FocusPredictor
from ..modeling import Sam, create_model


@dataclass(frozen=True)
class IouHeadConfig:
    model: str = "tiny"  # size name or SamConfig JSON
    checkpoint: str | None = None  # default: the bundled weights
    train_seed: int = 7000  # scenes the head is fitted on (not the evaluation's 1000)
    train_images: int = 600
    val_seed: int = 3000  # scenes that decide when to stop
    val_images: int = 100
    lr: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 20  # epochs without a better validation figure before stopping
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.train_images, self.val_images, self.batch_size, self.max_epochs) < 1:
            raise ValueError("train_images, val_images, batch_size, max_epochs must be >= 1")
        if self.lr <= 0 or self.patience < 1:
            raise ValueError("lr must be > 0 and patience >= 1")


@dataclass
class HeadData:
    """Rows of (head input, true IoU per mask token); `crop` marks crop answers, `obj` the
    object a row belongs to (its whole-image row and, when focused, its crop row)."""

    x: torch.Tensor  # N x D
    y: torch.Tensor  # N x T
    crop: np.ndarray  # N bool
    obj: np.ndarray  # N int


def _answers(pred, points, labels, gt, paste) -> tuple[torch.Tensor, np.ndarray, np.ndarray,
                                                       np.ndarray]:
    """Head inputs (K x D), true IoU per token (K x T), multimask masks and their scores,
    for K one-click prompts; `paste` (x0, y0, side) puts crop masks into the full frame."""
    from ..evaluation import mask_iou

    seen: list[torch.Tensor] = []
    hook = pred.model.mask_decoder.iou_prediction_head.register_forward_hook(
        lambda _m, args, _o: seen.append(args[0].detach().clone()))
    try:
        multi, scores, _ = pred.predict_batch(points, labels, multimask_output=True)
        single, _, _ = pred.predict_batch(points, labels, multimask_output=False)
    finally:
        hook.remove()
    masks = np.concatenate([single, multi], 1)  # K x T x h x w, in token order
    if paste is not None:
        x0, y0, side = paste
        full = np.zeros((*masks.shape[:2], *gt.shape[1:]), bool)
        full[:, :, y0:y0 + side, x0:x0 + side] = masks
        masks = full
    true = np.stack([mask_iou(m, g[None]) for m, g in zip(masks, gt, strict=True)])
    return seen[0], true, multi, scores


def collect(model: Sam, seed: int, images: int, progress: bool = False) -> HeadData:
    """First-click answers on `images` synthetic scenes of `seed` (see the module doc)."""
    from rich.progress import Progress

    from ..evaluation_job import EvalConfig, eval_samples

    n, samples = eval_samples(EvalConfig(num_images=images, data_seed=seed))
    fp = FocusPredictor(model)
    xs, ys, crop, obj = [], [], [], []
    base = 0  # objects so far

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"answers on seed {seed}", total=n)
        for image, gts in samples():
            bar.advance(task)
            base = _collect_image(fp, image, gts, base, (xs, ys, crop, obj))
    if not xs:
        raise ValueError(f"no objects in {images} scenes of seed {seed}")
    return HeadData(torch.cat(xs), torch.as_tensor(np.concatenate(ys), dtype=torch.float32),
                    np.concatenate(crop), np.concatenate(obj))


def _collect_image(fp: FocusPredictor, image: np.ndarray, gts: np.ndarray, base: int,
                   out: tuple[list, list, list, list]) -> int:
    """One scene's rows appended to `out`; -> the object count after it."""
    from ..evaluation import next_click

    xs, ys, crop, obj = out
    if not len(gts):
        return base
    fp.set_image(image)
    clicks = [next_click(g, np.zeros_like(g)) for g in gts]
    pts = np.array([[c[:2]] for c in clicks], dtype=np.float64)
    labels = np.array([[c[2]] for c in clicks])
    x, y, multi, scores = _answers(fp.full, pts, labels, gts, None)
    xs.append(x), ys.append(y), crop.append(np.zeros(len(gts), bool))
    obj.append(base + np.arange(len(gts)))
    for k in range(len(gts)):
        box = fp.crop_box(multi[k, int(scores[k].argmax())], pts[k][labels[k] > 0])
        if box is None:
            continue
        fp._set_crop(box)
        shift = np.array(box[:2], dtype=np.float64)
        x, y, _, _ = _answers(fp.crop, pts[k:k + 1] - shift, labels[k:k + 1],
                              gts[k:k + 1], box)
        xs.append(x), ys.append(y), crop.append(np.ones(1, bool))
        obj.append(np.array([base + k]))
    return base + len(gts)


def correlations(head: torch.nn.Module, data: HeadData) -> dict[str, float]:
    """Correlation of predicted and true IoU over the multimask candidates (what
    `maskengine eval` reports): of the whole-image answers, of the answers the focus pass
    returns (an object's crop answer where it has one), and of the crop answers alone."""
    with torch.no_grad():
        pred = head(data.x)[:, 1:].numpy()
    true = data.y[:, 1:].numpy()
    focused = np.isin(data.obj, data.obj[data.crop])
    rows = {"whole_image": ~data.crop, "focus": data.crop | ~focused, "crops": data.crop}

    def corr(sel: np.ndarray) -> float:
        if sel.sum() < 2:
            return float("nan")
        return float(np.corrcoef(pred[sel].ravel(), true[sel].ravel())[0, 1])

    return {k: round(corr(v), 4) for k, v in rows.items()}


def _score(c: dict[str, float]) -> float:
    return (c["whole_image"] + c["focus"]) / 2


def fit(head: torch.nn.Module, train: HeadData, val: HeadData, cfg: IouHeadConfig,
        progress: bool = False) -> tuple[torch.nn.Module, list[dict]]:
    """A copy of `head` fitted to `train`'s true IoUs (MSE over every mask token), the
    epoch with the best validation score kept; -> (head, per-epoch curve)."""
    head = copy.deepcopy(head).train()
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=0.0)
    best, best_score, since = copy.deepcopy(head), _score(correlations(head, val)), 0
    curve = [{"epoch": 0, "loss": None, **correlations(head, val)}]
    for epoch in range(1, cfg.max_epochs + 1):
        perm = torch.randperm(len(train.x), generator=gen)
        total = 0.0
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s:s + cfg.batch_size]
            loss = ((head(train.x[b]) - train.y[b]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        c = correlations(head, val)
        curve.append({"epoch": epoch, "loss": round(total / len(perm), 6), **c})
        if progress:
            print(f"epoch {epoch}: train MSE {total / len(perm):.4f}, validation {c}",
                  flush=True)
        if _score(c) > best_score:
            best, best_score, since = copy.deepcopy(head), _score(c), 0
        elif (since := since + 1) >= cfg.patience:
            break
    return best.eval(), curve


def calibrate(cfg: IouHeadConfig, progress: bool = False) -> tuple[Sam, dict]:
    """The model of `cfg` with its IoU head fitted again; -> (model, report)."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, checkpoint=cfg.checkpoint).eval()
    train = collect(model, cfg.train_seed, cfg.train_images, progress)
    val = collect(model, cfg.val_seed, cfg.val_images, progress)
    old = model.mask_decoder.iou_prediction_head
    head, curve = fit(old, train, val, cfg, progress)
    model.mask_decoder.iou_prediction_head = head
    report = {"config": dataclasses.asdict(cfg),
              "rows": {"train": len(train.x), "train_crops": int(train.crop.sum()),
                       "val": len(val.x), "val_crops": int(val.crop.sum())},
              "val_before": correlations(old, val), "val_after": correlations(head, val),
              "best_epoch": max(curve, key=lambda r: _score(r))["epoch"], "curve": curve}
    return model, report


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m maskengine.training.iou_head",
                                 description="Fit the IoU head again on whole-image and "
                                             "focus-crop answers (masks unchanged).")
    for f in dataclasses.fields(IouHeadConfig):
        kind = str if f.name == "checkpoint" else type(f.default)
        ap.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default)
    ap.add_argument("--out", required=True, help="writes OUT.pt and OUT.json")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = vars(ap.parse_args(argv))
    out, threads = Path(args.pop("out")), args.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = IouHeadConfig(**args)
        model, report = calibrate(cfg, progress=True)
    except (ValueError, FileNotFoundError) as exc:
        ap.error(str(exc))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out.with_name(out.name + ".pt")) as f:
        torch.save(model.state_dict(), f)
    write_atomic(out.with_name(out.name + ".json"), json.dumps(report, indent=2) + "\n")
    print(f"validation correlation before {report['val_before']}, after "
          f"{report['val_after']} (epoch {report['best_epoch']}); wrote {out}.pt, {out}.json")


if __name__ == "__main__":
    main()
