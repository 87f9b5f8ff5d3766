"""The `maskengine eval` job (and the settings of `maskengine prompts`): which model, on
which data, measured how; its report.

The protocol itself (clicks, mIoU, NoC, AR@k) is `maskengine.evaluation`. This module
imports nothing heavy at the top, so the command line can build its options from
`EvalConfig` without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class _ModelData:
    """Which model, on which data (the fields `maskengine eval` and `maskengine prompts`
    share)."""

    model: str | None = field(default=None, metadata={
        "help": "registered size or SamConfig JSON (default: tiny; with --project: the "
                "project's served model)"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "weights (default: the bundled ones for tiny)"})
    data: str = field(default="synthetic", metadata={
        "help": "'synthetic', 'synthetic:organic', an SA-1B folder, or a COCO instances JSON"})
    coco_images: str | None = field(default=None, metadata={"help": "image folder for COCO"})
    num_images: int = field(default=20, metadata={"help": "images evaluated"})
    data_seed: int = field(default=1000, metadata={
        "help": "synthetic seed (training uses 0: other seeds are unseen scenes)"})
    scene_size: int = field(default=256, metadata={"help": "synthetic scene side"})
    max_masks: int = field(default=0, metadata={"help": "masks per image (0: all)"})
    max_mask_fraction: float = field(default=0.9, metadata={"help": "drop larger masks"})
    project: str | None = field(default=None, metadata={
        "help": "a project folder: use its evaluation set --evalset"})
    evalset: str | None = field(default=None, metadata={
        "help": "with --project: a named evaluation set (all its images and masks, as "
                "frozen; --data, --num-images, --max-masks do not apply)"})
    out: str | None = field(default=None, metadata={"help": "write the figures as JSON here"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: default)"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ..."})

    def __post_init__(self) -> None:
        if self.num_images < 1 or self.max_masks < 0:
            raise ValueError("num_images must be >= 1 and max_masks >= 0")
        if bool(self.project) != bool(self.evalset):
            raise ValueError("--project and --evalset go together: the evaluation set NAME "
                             "of project PROJECT")


@dataclass(frozen=True)
class EvalConfig(_ModelData):
    """What `maskengine eval` measures, on which data, with which model."""

    max_clicks: int = field(default=20, metadata={"help": "clicks per object at most"})
    feed_mask: bool = field(default=True, metadata={"help": "feed back previous logits"})
    focus: bool | None = field(default=None, metadata={
        "help": "answer small masks again on a zoomed crop (maskengine.focus; clicks and, "
                "with --proposals, the generator's kept masks; default: on for models with an "
                "input under 1024, like tiny)"})
    proposals: bool = field(default=False, metadata={
        "help": "also measure AR@100/1000 of the automatic mask generator"})
    points_per_side: int = field(default=32, metadata={"help": "generator grid for AR@k"})
    pred_iou_thresh: float = field(default=0.88, metadata={"help": "generator IoU filter"})
    stability_score_thresh: float = field(default=0.95, metadata={
        "help": "generator stability filter"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_clicks < 1:
            raise ValueError(f"max_clicks must be >= 1, got {self.max_clicks}")


@dataclass(frozen=True)
class PromptStudyConfig(_ModelData):
    """What `maskengine prompts` measures, on which data, with which model."""

    seed: int = field(default=0, metadata={"help": "seed of the points drawn inside objects"})


def load_eval_model(cfg, project=None):  # noqa: ANN001, ANN201
    """(model, its name, model version id or None): cfg.model / cfg.checkpoint when given,
    else the served version of `project`, else the bundled tiny model."""
    from .modeling import create_model

    if project is None or cfg.model or cfg.checkpoint:
        name = cfg.model or "tiny"
        return create_model(name, cfg.checkpoint, cfg.device), name, None
    from .engine.versions import load_version, served_version

    with project.session() as s:
        mv = served_version(s)
        if mv is None:
            raise ValueError(f"project {project.root} has no served model yet: give --model, "
                             "or start `maskengine serve` once")
        return load_version(project, mv, cfg.device or "cpu"), mv.name, mv.id


def eval_samples(cfg, project=None):  # noqa: ANN001, ANN201
    """(number of images, a function giving the (image, masks) pairs) of what `cfg`
    names: the evaluation set cfg.evalset of `project`, or cfg.data (cfg.num_images
    images, masks over max_mask_fraction dropped, at most max_masks per image)."""
    import numpy as np

    from .data import drop_large, open_dataset

    if project is not None:
        from .quality.evalsets import EvalSetDataset

        frozen = EvalSetDataset(project, cfg.evalset)
        return len(frozen), lambda: ((s.image, s.masks) for s in map(
            frozen.__getitem__, range(len(frozen))))
    dataset = open_dataset(cfg)
    n = min(cfg.num_images, len(dataset))
    rng = np.random.default_rng(0)  # one stream for every pass (as before the split)

    def samples():
        for i in range(n):
            s = dataset[i]
            masks = drop_large(s.masks, cfg.max_mask_fraction)
            if cfg.max_masks and len(masks) > cfg.max_masks:
                masks = masks[np.sort(rng.choice(len(masks), cfg.max_masks, replace=False))]
            yield s.image, masks

    return n, samples


def run_evaluation(cfg: EvalConfig, progress: bool = True) -> dict:
    """Evaluate as `cfg` says; returns the figures (a JSON-ready dict), writes cfg.out."""
    import json

    from .atomic import write_atomic
    from .threads import set_process_threads

    set_process_threads(cfg.threads)
    project = None
    if cfg.project:
        from .engine.store import Project

        project = Project.open(cfg.project)
    try:
        n, samples = eval_samples(cfg, project)  # a missing set fails before the model loads
        model, model_name, version_id = load_eval_model(cfg, project)
        result = _run(cfg, model, n, samples, progress)
    finally:
        if project is not None:
            project.close()
    if project is not None:
        result.update(data=f"evalset:{cfg.evalset}", project=str(project.root),
                      data_seed=None, model=model_name, model_version_id=version_id)
    else:
        result["model"] = model_name
    if cfg.out:
        write_atomic(cfg.out, json.dumps(result, indent=2))
    return result


def _run(cfg: EvalConfig, model, n: int, samples, progress: bool) -> dict:  # noqa: ANN001
    from rich.progress import Progress

    from .evaluation import evaluate_interactive
    from .focus import FocusPredictor, click_predictor

    predictor = click_predictor(model, cfg.focus)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("interactive", total=n)
        report = evaluate_interactive(predictor, samples(), max_clicks=cfg.max_clicks,
                                      feed_mask=cfg.feed_mask,
                                      on_image=lambda _k: bar.advance(task))
        result = {"images": n, "data": cfg.data, "data_seed": cfg.data_seed,
                  "model": cfg.model, "checkpoint": cfg.checkpoint,
                  "focus": isinstance(predictor, FocusPredictor), **report.summary()}
        if cfg.proposals:
            result["generator"] = {"points_per_side": cfg.points_per_side,
                                   "pred_iou_thresh": cfg.pred_iou_thresh,
                                   "stability_score_thresh": cfg.stability_score_thresh}
            task = bar.add_task("proposals", total=n)
            result["proposals"] = _proposal_recall(model, cfg, samples(),
                                                   lambda: bar.advance(task))
    return result


def _proposal_recall(model, cfg: EvalConfig, samples, advance) -> dict:  # noqa: ANN001
    """AR@100/1000 of the automatic mask generator over `samples` ((image, masks) pairs)."""
    import numpy as np

    from .evaluation import RecallCounter
    from .generator import MaskGenerator

    gen = MaskGenerator(model, points_per_side=cfg.points_per_side,
                        pred_iou_thresh=cfg.pred_iou_thresh,
                        stability_score_thresh=cfg.stability_score_thresh,
                        output_mode="binary_mask", focus=cfg.focus)
    counter = RecallCounter()
    for image, masks in samples:
        recs = gen.generate(image)
        props = np.stack([r.segmentation for r in recs]) if recs else np.zeros(
            (0, *image.shape[:2]), bool)
        counter.add(props, np.array([r.predicted_iou for r in recs]), masks)
        advance()
    return counter.summary()


def print_report(result: dict) -> None:
    """The figures as a Rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"interactive, {result['objects']} objects in {result['images']} images")
    cols = [k for k in result["default"] if k.startswith("miou")] + [
        "noc@85", "noc@90", "nof@85", "nof@90"]
    table.add_column("mask")
    for c in cols:
        table.add_column(c.replace("miou", "mIoU").replace("noc", "NoC").replace("nof", "NoF"))
    for name in ("default", "oracle"):
        row = result[name]
        table.add_row(name, *[f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                              for c in cols])
    console = Console()
    if console.width < 110:  # a pipe or a narrow terminal: keep the table on one line each
        console = Console(width=110)
    console.print(table)
    if "by_size" in result:
        sizes = Table(title="by object size (COCO classes: area < 32², < 96², larger)")
        for c in ("size", "objects", "mIoU@1", "oracle mIoU@1", "mIoU@5", "NoC@85", "NoC@90"):
            sizes.add_column(c)
        for name, row in result["by_size"].items():
            d, o = row["default"], row["oracle"]
            sizes.add_row(name, str(row["objects"]), f"{d['miou@1']:.3f}", f"{o['miou@1']:.3f}",
                          f"{d.get('miou@5', float('nan')):.3f}", f"{d['noc@85']:.2f}",
                          f"{d['noc@90']:.2f}")
        console.print(sizes)
    if "iou_head" in result:
        h = result["iou_head"]
        console.print(f"IoU head (first click, all masks): correlation with the true IoU "
                      f"{h['correlation']:.3f}, picks the best mask {h['picks_best']:.0%}")
    if "proposals" in result:
        p = result["proposals"]
        console.print(f"proposals: AR@100 {p['ar@100']:.3f}  AR@1000 {p['ar@1000']:.3f} "
                      f"over {p['gt_masks']} masks")
