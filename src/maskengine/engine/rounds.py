"""Model-in-the-loop rounds: fine-tune the served model on the accepted masks, validate it,
register it, and promote it when it is not worse.

A round (`run_round`):
1. takes the served model version (the one promoted last; the starting model is round 0);
2. fine-tunes it with `maskengine.training` on the accepted masks of the train split
   (live, not rejected), in the run folder `PROJECT/runs/round_N` (a killed round resumes);
3. evaluates the new and the served model with `maskengine.evaluation` on the accepted
   masks of the validation split, or on a named evaluation set (`RoundConfig.evalset`,
   else the project's default set when it has one) (the same images for both, so the
   comparison is fair; a model measured on the same objects before is not run again);
4. registers the new version with its metrics, and promotes it unless its validation
   1-point mIoU fell or its NoC@90 rose beyond `tolerance` plus the noise of the paired
   per-object change (`promotion.judge`, `noise_z`), against the served version or the
   version the rounds started from (`guard_start`); a running server polls the store and
   switches to a newly promoted version without a restart;
5. once the project uses stage 2 (it has a detector), retrains the detector on the served
   model's embeddings and all accepted masks, and adds its validation AP50 / recall to the
   round's metrics (`RoundConfig.detector`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..atomic import atomic_open, write_atomic
from ..config import SamConfig
from ..detection.config import DetectorConfig
from ..training.config import StopTraining, TrainingConfig
from .models import ModelVersion
from .project_dataset import ProjectDataset
from .promotion import gate
from .report_cache import ReportCache
from .store import Project
from .versions import (
    RoundError,
    load_version,
    promote,
    relative_path,
    served_version,
    starting_version,
    weights_path,
)

if TYPE_CHECKING:
    from ..quality.evalsets import EvalSetDataset

# Fine-tuning defaults of a round: short, gentle, cheap on a CPU. `maskengine train PROJECT`
# options override them one by one. The whole model at a low learning rate with replay (see
# RoundConfig.replay) won benchmarks/finetune_recipes.py with the stride-16 and the stride-8
# bundled weights: lr 2e-4, a frozen image encoder or no replay made the validation
# figures worse on a new domain, the anchor (L2-SP) and the loss at 256 no better
# (docs/training.md).
ROUND_TRAINING_DEFAULTS: dict = {
    "steps": 300, "lr": 1e-4, "warmup_steps": 20, "batch_size": 4, "masks_per_image": 4,
    "points": 8, "mask_only": 2, "grad_iterations": 2, "checkpoint_every": 50,
    "keep_checkpoints": 1, "first_decay": 0.8, "second_decay": 0.95,
    # Half the samples shown as the focus pass shows small objects to the served model, at
    # lr 1e-4 (benchmarks/finetune_recipes.py, phase-9 weights: NoC@90 8.12 none, 8.03 lr 5e-5
    # without focus views, 7.29 with them, 7.25 with them at lr 1e-4: the best score).
    "focus_views": 0.5,
}
# Fields a round sets itself: a user value for them would be ignored, so it is refused.
ROUND_OWNED_FIELDS = ("out", "model", "checkpoint", "data", "coco_images", "num_images",
                      "data_seed", "scene_size")


def replay_source(replay: str | None, parent_config: dict) -> str | None:
    """What a round replays: `replay` itself, or for 'auto' the data the served model was
    trained on when that is known ('synthetic' for the bundled `tiny`), else nothing."""
    if replay != "auto":
        return replay or None
    from ..config import MODEL_CONFIGS

    return "synthetic" if SamConfig(**parent_config) == MODEL_CONFIGS["tiny"] else None


def round_training_config(overrides: dict | None = None) -> TrainingConfig:
    """The round defaults with `overrides` (TrainingConfig field -> value) on top."""
    overrides = dict(overrides or {})
    owned = sorted(set(overrides) & set(ROUND_OWNED_FIELDS))
    if owned:
        raise ValueError(f"a project round sets {', '.join(owned)} itself; leave them out")
    return TrainingConfig(**{**ROUND_TRAINING_DEFAULTS, **overrides})


@dataclass(frozen=True)
class RoundConfig:
    """How a round trains and validates. `training` holds the fine-tuning recipe; its
    out/model/checkpoint/data fields are replaced by the round."""

    training: TrainingConfig = field(default_factory=round_training_config)
    max_val_images: int = 50  # validation images evaluated at most (in id order)
    max_clicks: int = 20  # clicks per object in the validation protocol
    tolerance: float = 0.0  # mIoU@1 may fall (and NoC@90 rise x20) this much and still promote
    # ... plus this many standard errors of the paired per-object change (engine/promotion.py;
    # 0: the strict rule, any fall of mIoU@1 or rise of NoC@90 blocks the promotion).
    noise_z: float = 2.0
    # Also compare with the version the project's rounds started from (the served one's
    # first ancestor), under the same rule: losses within the noise cannot add up.
    guard_start: bool = True
    # Old data replayed with the accepted masks ('synthetic', 'synthetic:organic', an SA-1B
    # folder or a COCO JSON; None: accepted masks only), as this share of the samples.
    # 'auto': the bundled `tiny` model's own training data ('synthetic') when the served
    # model is a `tiny`, else none (a released checkpoint's data is not at hand).
    replay: str | None = "auto"
    replay_fraction: float = 0.5
    # Promote even without accepted validation masks to compare on (an admin's explicit
    # choice); otherwise such a round is registered but not promoted.
    force: bool = False
    # Validate on this named evaluation set (`maskengine evalset`) instead of the
    # validation split; None: the project's default set when it has one, else the split.
    evalset: str | None = None
    # Retrain the stage-2 detector after the round: None (auto) when the project has one
    # already, True always, False never.
    detector: bool | None = None
    detector_config: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        if self.max_val_images < 1 or self.max_clicks < 1:
            raise ValueError("max_val_images and max_clicks must be >= 1")
        if not 0.0 <= self.replay_fraction < 1.0:
            raise ValueError(f"replay_fraction must be in [0, 1), got {self.replay_fraction}")
        if self.tolerance < 0 or self.noise_z < 0:
            raise ValueError(f"tolerance and noise_z must be >= 0, got {self.tolerance} and "
                             f"{self.noise_z}")


class RoundCancelled(StopTraining):
    """Raised by a round's own callback (`on_step` / `on_phase`) to stop it: nothing is
    registered, and the run folder stays; raised from on_step, the trainer saves that step
    first, so the next round resumes exactly where this one stopped."""


# -- one round ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoundResult:
    version_id: int
    round: int
    promoted: bool
    note: str
    metrics: dict
    weights: Path


def run_round(
    project: Project, cfg: RoundConfig | None = None, *, progress: bool = True,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> RoundResult:
    """Fine-tune the served model on the accepted train masks, validate, register, and
    promote unless worse. Raises RoundError when there is nothing to train on or another
    round of the project is running.

    on_step(step, log) follows training (`training.trainer.train`); on_phase(name) is
    called as "training", "validating" and "registering" begin. Either may raise
    RoundCancelled (or anything else) to stop the round there; the lock is released."""
    cfg = cfg or RoundConfig()
    with _round_lock(project):
        return _run_round(project, cfg, progress, log, on_step, on_phase or (lambda _p: None))


@contextmanager
def _round_lock(project: Project) -> Iterator[None]:
    """One round at a time per project, across processes (CLI and server); the lock dies
    with its process, so a killed round never blocks the next."""
    import fcntl

    path = project.root / "runs" / "round.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RoundError("another round of this project is running") from exc
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def round_running(project: Project) -> bool:
    """Whether a round of the project holds the lock now (in any process)."""
    try:
        with _round_lock(project):
            return False
    except RoundError:
        return True


@dataclass(frozen=True)
class _RoundStart:
    """What a round starts from, read in one database session."""

    number: int
    parent_id: int
    parent_name: str
    parent_config: dict  # SamConfig fields
    parent_weights: Path | None
    train_set: ProjectDataset
    val_set: ProjectDataset | EvalSetDataset


def _run_round(project: Project, cfg: RoundConfig, progress: bool,
               log: Callable[[str], None],
               on_step: Callable[[int, dict[str, float]], None] | None,
               on_phase: Callable[[str], None]) -> RoundResult:
    start = _start(project, cfg, log)
    on_phase("training")
    weights, device, train_metrics = _train(project, cfg, start, progress, log, on_step)
    promoted, note, val_metrics = _judge(project, cfg, start, weights, device, on_phase)
    metrics = {"train": train_metrics, **val_metrics}
    on_phase("registering")
    mv_id = _register(project, start, weights, metrics, promoted, note)
    log(f"round {start.number}: version {mv_id}: {note}")
    if _wants_detector(project, cfg):
        try:
            on_phase("detector")
        except RoundCancelled:  # the version is registered already: keep it, skip this
            log(f"round {start.number}: cancelled before the detector was retrained")
        else:
            metrics = _retrain_detector(project, cfg, mv_id, metrics, log)
    return RoundResult(version_id=mv_id, round=start.number, promoted=promoted, note=note,
                       metrics=metrics, weights=weights)


def _start(project: Project, cfg: RoundConfig, log: Callable[[str], None]) -> _RoundStart:
    """The served model to fine-tune, the round's number and its train / val data."""
    with project.session() as s:
        parent = served_version(s)
        if parent is None:
            raise RoundError("the project has no served model yet: start `maskengine serve` "
                             "once or annotate first")
        number = (s.scalar(select(ModelVersion.round).order_by(ModelVersion.round.desc())
                           .limit(1)) or 0) + 1
        parent_id, parent_name = parent.id, parent.name
        parent_config = json.loads(parent.config_json)
        parent_weights = weights_path(project, parent)
    train_set = ProjectDataset(project, "train")
    if len(train_set) == 0:
        raise RoundError("no accepted masks on train-split images yet: annotate some first")
    # Evaluation sets are data maintenance (maskengine.quality, a layer above the engine).
    from ..quality.evalsets import EvalSetDataset, default_evalset

    evalset = cfg.evalset or default_evalset(project)
    try:
        val_set = (EvalSetDataset(project, evalset) if evalset else
                   ProjectDataset(project, "val", cfg.max_val_images))
    except ValueError as exc:  # EvalSetError: a missing or damaged set
        raise RoundError(str(exc)) from exc
    log(f"round {number}: fine-tuning version {parent_id} on {train_set.num_masks} masks of "
        f"{len(train_set)} images; {val_set.num_masks} validation masks on {len(val_set)} "
        f"images" + (f" (evaluation set {evalset})" if evalset else ""))
    return _RoundStart(number, parent_id, parent_name, parent_config, parent_weights,
                       train_set, val_set)


def _train(project: Project, cfg: RoundConfig, start: _RoundStart, progress: bool,
           log: Callable[[str], None],
           on_step: Callable[[int, dict[str, float]], None] | None,
           ) -> tuple[Path, str, dict]:
    """Fine-tune in runs/round_NNN: (the weights file, the device, the training figures)."""
    import torch

    from ..modeling import create_model
    from ..training.trainer import train

    run_dir = project.root / "runs" / f"round_{start.number:03d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "sam_config.json"
    write_atomic(config_file, json.dumps(start.parent_config, indent=1))
    parent_weights = start.parent_weights
    if parent_weights is None:
        # A randomly initialised starting model: write its weights so training starts
        # from the same network the annotators used.
        parent_weights = run_dir / "parent.pt"
        with atomic_open(parent_weights) as f:
            torch.save(create_model(SamConfig(**start.parent_config)).state_dict(), f)
    training = TrainingConfig(**{**cfg.training.to_dict(), "out": str(run_dir / "train"),
                                 "model": str(config_file), "checkpoint": str(parent_weights),
                                 "data": f"project:{project.root}"})
    t0 = time.perf_counter()
    data = start.train_set
    source = replay_source(cfg.replay, start.parent_config)
    if source:
        from ..data import open_dataset
        from ..data.mix import MixedDataset

        replay = open_dataset(TrainingConfig(data=source, num_images=1_000_000))
        data = MixedDataset(start.train_set, replay, cfg.replay_fraction)
        log(f"round {start.number}: replaying {source} as {cfg.replay_fraction:.0%} of "
            "samples")
    trained = train(training, progress=progress, dataset=data, on_step=on_step)
    train_seconds = time.perf_counter() - t0
    weights = run_dir / "model.pt"
    with open(trained, "rb") as src, atomic_open(weights) as dst:
        shutil.copyfileobj(src, dst)
    figures = {"images": len(start.train_set), "masks": start.train_set.num_masks,
               "replay": source,
               "replay_fraction": cfg.replay_fraction if source else 0.0,
               "steps": training.steps, "seconds": round(train_seconds, 1)}
    return weights, training.device or "cpu", figures


def _judge(project: Project, cfg: RoundConfig, start: _RoundStart, weights: Path, device: str,
           on_phase: Callable[[str], None]) -> tuple[bool, str, dict]:
    """Whether to promote the new weights, why, and the validation figures ({"val",
    "parent_val"} when there were validation masks)."""
    import torch

    from ..modeling import create_model

    finite = all(bool(torch.isfinite(v).all()) for v in
                 torch.load(weights, map_location="cpu", weights_only=True).values()
                 if v.is_floating_point())
    if not finite:
        # A diverged run (too high a learning rate): nothing to validate or serve.
        return False, ("kept, not promoted: training diverged (weights are not finite); "
                       "lower the learning rate"), {}
    if not len(start.val_set):
        if cfg.force:
            return True, ("promoted without validation (forced): no accepted masks on "
                          "validation images"), {}
        return False, ("kept, not promoted: no accepted masks on validation images to "
                       "compare it on; label some, or force the promotion"), {}
    on_phase("validating")
    new_model = create_model(SamConfig(**start.parent_config), checkpoint=weights,
                             device=device)
    cache = ReportCache(project.root / "runs" / "val_reports", start.val_set, cfg.max_clicks)
    new_report = cache.report(new_model)
    with project.session() as s:
        parent = s.get(ModelVersion, start.parent_id)
        old_model = load_version(project, parent, device)
        first = starting_version(s, parent) if cfg.guard_start else parent
        first_model = load_version(project, first, device) if first.id != parent.id else None
        first_name = f"version {first.id} ({first.name})"
    why, note, changes = gate(
        new_report, cache.report(old_model), first_name,
        None if first_model is None else (lambda: cache.report(first_model)),
        cfg.tolerance, cfg.noise_z)
    metrics = {"val": new_report.summary(), "val_set": start.val_set.split, **changes}
    if why:
        return False, f"kept, not promoted: {why}", metrics
    return True, note, metrics


def _register(project: Project, start: _RoundStart, weights: Path, metrics: dict,
              promoted: bool, note: str) -> int:
    """Record the new version (promoted or not) and the parent's first validation; its id."""
    from .segmenter import model_key

    key, wsha = model_key(SamConfig(**start.parent_config), str(weights))
    with project.session() as s:
        mv = ModelVersion(key=key, name=f"{start.parent_name.split('@')[0]}@round{start.number}",
                          config_json=json.dumps(start.parent_config),
                          checkpoint=relative_path(project, weights), checkpoint_sha256=wsha,
                          round=start.number, parent_id=start.parent_id,
                          metrics_json=json.dumps(metrics), note=note)
        parent = s.get(ModelVersion, start.parent_id)
        parent_metrics = json.loads(parent.metrics_json or "{}")
        if "parent_val" in metrics and "val" not in parent_metrics:
            # The starting model was never validated: its figures are these.
            parent.metrics_json = json.dumps({**parent_metrics, "val": metrics["parent_val"]})
        if s.scalar(select(ModelVersion).where(ModelVersion.key == key)) is not None:
            raise RoundError(f"round {start.number} produced weights identical to an existing "
                             f"version (nothing was learned?)")
        s.add(mv)
        s.flush()
        if promoted:
            promote(s, mv)
        return mv.id


# -- stage 2: the detector follows the rounds ----------------------------------------------------
def _wants_detector(project: Project, cfg: RoundConfig) -> bool:
    if cfg.detector is not None:
        return cfg.detector
    from .detectors import has_detector

    return has_detector(project)


def _retrain_detector(project: Project, cfg: RoundConfig, mv_id: int, metrics: dict,
                      log: Callable[[str], None]) -> dict:
    from .detectors import retrain_after_round

    return retrain_after_round(project, cfg.detector_config, mv_id, metrics, log,
                               device=cfg.training.device or "cpu",
                               max_val_images=cfg.max_val_images)
