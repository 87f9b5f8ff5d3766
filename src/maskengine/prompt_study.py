"""The paper's prompt comparison: how good the model's first answer is for each kind of
prompt, overall and per COCO object-size class.

For every ground-truth object, one prompt of each kind (original-image pixels):
  1 point      the point farthest from the object's boundary (as the paper's protocol);
  3 points     that point and 2 more drawn uniformly inside the object (all positive);
  5 points     that point and 4 more drawn inside;
  box          the object's tight box (x0, y0, x1, y1, inclusive max corners, as training);
  box + point  the box and the centre point.
Two answers per prompt: `miou`, the mask the model gives (the most confident of its 3
masks for the single point, which is ambiguous; its single mask for the others, as SAM
is used with unambiguous prompts) and `oracle_miou`, the best of its 3 masks against the
truth. Points are drawn with a generator seeded by (seed, image index): runs repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .evaluation import SIZE_CLASSES, ClickPredictor, centre_point, mask_iou
from .evaluation_job import PromptStudyConfig

PROMPTS = ("1 point", "3 points", "5 points", "box", "box + point")
__all__ = ["PROMPTS", "PromptStudyConfig", "object_prompts", "run_prompt_study", "run_study",
           "study_image"]


def object_prompts(mask: np.ndarray, rng: np.random.Generator) -> dict[str, tuple]:
    """Prompt kind -> (points N x 2 (x, y) or None, box (4,) or None) for one object
    (H x W bool, not empty)."""
    ys, xs = np.nonzero(mask)
    cx, cy = centre_point(mask)
    centre = np.array([[cx, cy]], dtype=np.float64)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)

    def inside(n: int) -> np.ndarray:
        pick = rng.choice(len(xs), n - 1, replace=len(xs) < n - 1)
        return np.concatenate([centre, np.stack([xs[pick], ys[pick]], 1)])

    return {"1 point": (centre, None), "3 points": (inside(3), None),
            "5 points": (inside(5), None), "box": (None, box), "box + point": (centre, box)}


def study_image(predictor: ClickPredictor, image: np.ndarray, masks: np.ndarray,
                rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Prompt kind -> (IoU of the model's answer K, IoU of the best of 3 K) for the K
    objects of one image (image H x W x 3 uint8, masks K x H x W bool)."""
    k = len(masks)
    if k == 0:
        return {p: (np.zeros(0), np.zeros(0)) for p in PROMPTS}
    predictor.set_image(image)
    per_object = [object_prompts(m, rng) for m in masks]
    out = {}
    for kind in PROMPTS:
        pts = [o[kind][0] for o in per_object]
        coords = None if pts[0] is None else np.stack(pts)
        labels = None if coords is None else np.ones(coords.shape[:2])
        boxes = None if per_object[0][kind][1] is None else np.stack(
            [o[kind][1] for o in per_object])
        three, scores, _ = predictor.predict_batch(coords, labels, boxes, multimask_output=True)
        ious = mask_iou(three, masks[:, None])  # K x 3
        if kind == "1 point":
            answer = ious[np.arange(k), np.asarray(scores).argmax(1)]
        else:
            single, _, _ = predictor.predict_batch(coords, labels, boxes,
                                                   multimask_output=False)
            answer = mask_iou(single[:, 0], masks)
        out[kind] = (np.asarray(answer, np.float64), ious.max(1).astype(np.float64))
    return out


def _figures(ious: np.ndarray, oracle: np.ndarray) -> dict:
    return {"objects": int(len(ious)), "miou": float(ious.mean()) if len(ious) else None,
            "oracle_miou": float(oracle.mean()) if len(oracle) else None}


def run_study(predictor: ClickPredictor, samples: Iterable[tuple[np.ndarray, np.ndarray]],
              *, seed: int = 0, on_image: Callable[[], None] | None = None) -> dict:
    """The comparison over (image, masks) pairs: per prompt kind, mIoU and oracle mIoU over
    all objects and per size class (mask area in pixels of the image as evaluated)."""
    got: dict[str, list] = {p: [] for p in PROMPTS}
    areas = []
    n = 0
    for i, (image, masks) in enumerate(samples):
        rng = np.random.default_rng((seed, i))
        masks = masks[masks.reshape(len(masks), -1).any(1)]  # an empty mask has no prompt
        for kind, pair in study_image(predictor, image, masks, rng).items():
            got[kind].append(pair)
        areas.append(masks.reshape(len(masks), -1).sum(1))
        n += 1
        if on_image is not None:
            on_image()
    area = np.concatenate(areas) if areas else np.zeros(0)
    result: dict = {"images": n, "objects": int(len(area)), "seed": seed, "prompts": {}}
    for kind in PROMPTS:
        ious = np.concatenate([a for a, _ in got[kind]]) if got[kind] else np.zeros(0)
        best = np.concatenate([b for _, b in got[kind]]) if got[kind] else np.zeros(0)
        row = _figures(ious, best)
        row["by_size"] = {name: _figures(ious[sel], best[sel]) for name, lo, hi in SIZE_CLASSES
                          if (sel := (area >= lo) & (area < hi)).any()}
        result["prompts"][kind] = row
    return result


def run_prompt_study(cfg: PromptStudyConfig, progress: bool = True) -> dict:
    """Run the study as `cfg` says; returns the figures, writes cfg.out."""
    import json

    from rich.progress import Progress

    from .atomic import write_atomic
    from .evaluation_job import eval_samples, load_eval_model
    from .predictor import Predictor
    from .threads import set_process_threads

    set_process_threads(cfg.threads)
    project = None
    if cfg.project:
        from .engine.store import Project

        project = Project.open(cfg.project)
    try:
        n, samples = eval_samples(cfg, project)
        model, name, version_id = load_eval_model(cfg, project)
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("prompts", total=n)
            result = run_study(Predictor(model), samples(), seed=cfg.seed,
                               on_image=lambda: bar.advance(task))
    finally:
        if project is not None:
            project.close()
    result = {"model": name, "checkpoint": cfg.checkpoint, "model_version_id": version_id,
              "data": f"evalset:{cfg.evalset}" if cfg.evalset else cfg.data,
              "data_seed": None if cfg.evalset else cfg.data_seed, **result}
    if cfg.out:
        write_atomic(cfg.out, json.dumps(result, indent=2) + "\n")
    return result


def print_study(result: dict) -> None:
    """The figures as a Rich table: one row per prompt kind, mIoU overall and per size."""
    from rich.console import Console
    from rich.table import Table

    sizes = [name for name, _, _ in SIZE_CLASSES
             if any(name in r["by_size"] for r in result["prompts"].values())]
    table = Table(title=f"first answer per prompt: {result['objects']} objects in "
                  f"{result['images']} images ({result['model']})")
    for col in ("prompt", "mIoU", "oracle", *[f"{s}\n({c})" for s, c in (
            (s, next(iter(result["prompts"].values()))["by_size"][s]["objects"])
            for s in sizes)]):
        table.add_column(col, justify="left" if col == "prompt" else "right")
    for kind, row in result["prompts"].items():
        table.add_row(kind, _f(row["miou"]), _f(row["oracle_miou"]),
                      *[_f(row["by_size"][s]["miou"]) for s in sizes])
    console = Console()
    if console.width < 90:
        console = Console(width=90)
    console.print(table)
    console.print("mIoU: the model's answer (most confident of 3 for one point, its single "
                  "mask otherwise); oracle: best of 3; size columns: mIoU (objects)")


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
