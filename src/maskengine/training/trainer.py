"""The training loop: data -> simulated interaction -> AdamW, with checkpoints that resume.

A run folder holds:
  config.json             the resolved TrainingConfig and the model's SamConfig
  metrics.jsonl           one JSON line per optimizer step
  model.pt                latest weights, a plain state_dict (official layout)
  checkpoints/step_N.pt   weights every `checkpoint_every` steps (plain state_dicts)
  resume.pt               weights + optimizer + step, to continue after a kill
Every file is written to a temporary name and renamed, so a kill never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from ..atomic import atomic_open, remove_stale_temps, write_atomic
from ..data import Dataset, open_dataset
from ..modeling import Sam
from ..modeling.registry import create_model, resolve_config
from ..threads import set_process_threads
from . import distributed
from .batch import Batch, StepBatches
from .config import StopTraining, TrainingConfig
from .interaction import interactive_rollout


def build_model(cfg: TrainingConfig) -> Sam:
    """A Sam from scratch (seeded), or initialised from `cfg.checkpoint` (a file or
    'bundled')."""
    torch.manual_seed(cfg.seed)
    if cfg.checkpoint:
        return create_model(cfg.model, cfg.checkpoint)
    model = Sam.from_config(resolve_config(cfg.model))
    init_from_scratch(model)
    return model


def init_from_scratch(model: Sam, qk_scale: float = 4.0) -> None:
    """Initialisation for training without a checkpoint (the official code only ever loads
    released weights, so its modules keep PyTorch defaults).

    - A ViT encoder's position table gets small random values (ViT/timm practice) instead
      of zeros, so image embeddings carry absolute position from the start. (A TinyViT has
      none: its convolutions and the zero padding at the borders carry position.)
    - In the decoder's attention layers the key projection starts equal to the query
      projection, scaled by `qk_scale`. Query and key then share one metric, so attention
      between a prompt token (which carries the Fourier code of its position) and an image
      location (which carries the code of its own) peaks where the two coincide. With
      independent random projections the decoder sits on a long plateau predicting nothing
      before it discovers that alignment (measured here: a point -> disk task stayed at IoU 0
      for 300 steps, and escapes in about 50 with this start).
    """
    from ..modeling.transformer import Attention

    with torch.no_grad():
        pos = getattr(model.image_encoder, "pos_embed", None)
        if pos is not None:
            torch.nn.init.trunc_normal_(pos, std=0.02)
        for mod in model.mask_decoder.modules():
            if isinstance(mod, Attention):
                mod.q_proj.weight.mul_(qk_scale)
                mod.k_proj.weight.copy_(mod.q_proj.weight)
                mod.q_proj.bias.zero_()
                mod.k_proj.bias.zero_()


def lr_factor(step: int, cfg: TrainingConfig) -> float:
    """Linear warmup, then /10 at first_decay and again at second_decay (fractions of steps)."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    decay = 1.0
    if step >= cfg.first_decay * cfg.steps:
        decay *= 0.1
    if step >= cfg.second_decay * cfg.steps:
        decay *= 0.1
    return warm * decay


def _save(obj: object, path: Path) -> None:
    with atomic_open(path) as f:
        torch.save(obj, f)


class Trainer:
    """Trains `model` as `cfg` says, in the run folder `cfg.out`."""

    def __init__(self, cfg: TrainingConfig, dataset: Dataset | None = None) -> None:
        """dataset: the samples to train on; default: the one `cfg.data` names."""
        self.cfg = cfg
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        set_process_threads(cfg.threads)
        self.rank, self.world = distributed.init_from_env(self.device)
        self.run_dir = Path(cfg.out)
        self.model = build_model(cfg).to(self.device)
        mc = self.model.config
        self.loss_size = cfg.loss_size or mc.low_res_size
        if mc.image_size % self.loss_size:
            raise ValueError(f"loss_size {self.loss_size} must divide image_size {mc.image_size}")
        self.dataset = dataset if dataset is not None else open_dataset(cfg)
        if len(self.dataset) == 0:
            raise ValueError("the training dataset holds no images")
        if cfg.freeze_image_encoder:
            self.model.image_encoder.requires_grad_(False)
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and "pos" not in name else no_decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr, betas=(0.9, 0.999),
        )
        # Batch norm (TinyViT's conv parts): fine-tuning batches are small and from one
        # domain, so their statistics would drift from the ones the weights were trained
        # with; from scratch there are no statistics to keep, so they are trained.
        self.freeze_batchnorm = (cfg.freeze_batchnorm if cfg.freeze_batchnorm is not None
                                 else cfg.checkpoint is not None)
        # L2-SP: the starting weights the anchor pulls toward (a fine-tune's checkpoint).
        self._anchor = ([(p, p.detach().clone()) for p in self.model.parameters()
                         if p.requires_grad] if cfg.anchor_weight > 0 else [])
        self.step = 0
        self._cache: dict[int, torch.Tensor] = {}
        self._ahead: Iterator[tuple[list[int], Batch]] | None = None  # batches from workers

    # -- state ---------------------------------------------------------------------------
    def resume_if_possible(self) -> bool:
        path = self.run_dir / "resume.pt"
        if not path.is_file():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("model_config") != self.model.config.to_dict():
            raise ValueError(f"run folder {self.run_dir} holds a different model; "
                             f"pick another --out")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        metrics = self.run_dir / "metrics.jsonl"
        if metrics.is_file() and self.rank == 0:  # drop lines written after the last save
            lines = [ln for ln in metrics.read_text().splitlines()
                     if ln and json.loads(ln)["step"] <= self.step]
            write_atomic(metrics, "".join(ln + "\n" for ln in lines))
        return True

    def save(self) -> None:
        if self.rank:
            return
        sd = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        ckpt_dir = self.run_dir / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        _save(sd, ckpt_dir / f"step_{self.step:07d}.pt")
        for old in sorted(ckpt_dir.glob("step_*.pt"))[: -self.cfg.keep_checkpoints]:
            old.unlink()
        _save(sd, self.run_dir / "model.pt")
        _save({"model": sd, "optimizer": self.optimizer.state_dict(), "step": self.step,
               "model_config": self.model.config.to_dict()}, self.run_dir / "resume.pt")

    # -- one step ------------------------------------------------------------------------
    def _embed(self, inputs: torch.Tensor, keys: list[int]) -> torch.Tensor:
        enc = self.model.image_encoder
        if not self.cfg.freeze_image_encoder:
            return enc(inputs)
        # Frozen encoder: embeddings do not change, so compute each image's once (jitter
        # and focus views make views new, so then nothing is cached).
        if self.cfg.jitter or self.cfg.focus_views > 0:
            with torch.no_grad():
                return enc(inputs)
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            with torch.no_grad():
                new = enc(inputs[missing])
            for i, e in zip(missing, new, strict=True):
                self._cache[keys[i]] = e
        return torch.stack([self._cache[k] for k in keys])

    def batches(self, start: int) -> StepBatches:
        """The run's micro-batches from step `start` on (see StepBatches)."""
        cfg = self.cfg
        return StepBatches(self.dataset, cfg.seed, self.model.config.image_size,
                           self.loss_size, cfg.batch_size, cfg.masks_per_image,
                           cfg.max_mask_fraction, cfg.jitter, cfg.focus_views, start, cfg.steps,
                           cfg.accumulate, self.rank, self.world)

    def _next_batch(self, micro: int) -> tuple[list[int], Batch]:
        if self._ahead is not None:
            return next(self._ahead)
        return self.batches(self.step).build(self.step, micro * self.world + self.rank)

    def micro_step(self, micro: int) -> dict[str, float]:
        cfg = self.cfg
        index = micro * self.world + self.rank  # this micro-batch's number in the step
        gen = torch.Generator(self.device).manual_seed(
            (cfg.seed * 1_000_003 + self.step * 131 + index) % 2**63)
        keys, batch = self._next_batch(micro)
        amp = (torch.autocast("cuda", dtype=torch.bfloat16)
               if cfg.amp and self.device.type == "cuda" else contextlib.nullcontext())
        with amp:
            emb = self._embed(batch.inputs.to(self.device), keys)
            res = interactive_rollout(
                self.model, emb, batch, points=cfg.points, mask_only=cfg.mask_only,
                box_prob=cfg.box_prob, grad_iterations=cfg.grad_iterations,
                mask_hint=cfg.mask_hint, focal_alpha=cfg.focal_alpha,
                weights=(cfg.focal_weight, cfg.dice_weight, cfg.iou_weight), gen=gen)
        (res.loss / (cfg.accumulate * self.world)).backward()
        return {"loss": float(res.loss.detach()), "focal": res.focal, "dice": res.dice,
                "iou_mse": res.iou_mse, "iou_first": res.first_iou, "iou_last": res.last_iou,
                "prompts": float(len(batch.targets)), "hinted": float(res.hinted)}

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        self.model.train()
        if cfg.freeze_image_encoder:
            self.model.image_encoder.eval()
        elif self.freeze_batchnorm:
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(self.step, cfg)
        self.optimizer.zero_grad(set_to_none=True)
        logs = [self.micro_step(m) for m in range(cfg.accumulate)]
        if self.world > 1:
            distributed.sum_gradients(self.model)
        self._pull_to_anchor()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        if self.world > 1:
            distributed.average_batchnorm(self.model)
        out = {k: sum(d[k] for d in logs) / len(logs) for k in logs[0]}
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        return out

    def _pull_to_anchor(self) -> None:
        """Add the gradient of anchor_weight * |p - p0|^2 (the same on every process)."""
        w = 2.0 * self.cfg.anchor_weight
        for p, p0 in self._anchor:
            if p.grad is None:
                p.grad = w * (p.detach() - p0)
            else:
                p.grad.add_(p.detach() - p0, alpha=w)

    def spent_minutes(self, key: str = "cpu_seconds") -> float:
        """Minutes the saved steps of this run used (metrics.jsonl): CPU minutes, or with
        key="seconds" wall-clock minutes (older lines without `cpu_seconds` count their wall
        seconds for both)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return 0.0
        logs = [json.loads(ln) for ln in path.read_text().splitlines() if ln]
        return sum(d.get(key, d["seconds"]) for d in logs) / 60.0

    # -- the run -------------------------------------------------------------------------
    def run(self, on_step: Callable[[int, dict[str, float]], None] | None = None) -> Path:
        """Train until cfg.steps; returns the path of the final weights (model.pt)."""
        main = self.rank == 0  # data-parallel ranks > 0 write nothing
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if main:
            for folder in (self.run_dir, self.run_dir / "checkpoints"):
                remove_stale_temps(folder)  # what a killed run was writing
            write_atomic(self.run_dir / "config.json", json.dumps(
                {"training": self.cfg.to_dict(), "model": self.model.config.to_dict(),
                 "processes": self.world}, indent=2))
        # Budgets (0: none) on the saved steps' CPU seconds (all ranks) and wall seconds.
        budget = (self.cfg.max_cpu_minutes * 60.0, self.cfg.max_minutes * 60.0)
        spent = [self.spent_minutes(k) * 60.0 if self.step else 0.0
                 for k in ("cpu_seconds", "seconds")]
        if self.world > 1:
            spent = [distributed.broadcast_float(x) for x in spent]
        # A run that starts at step 0 owns the file: lines of an earlier attempt killed
        # before its first save would otherwise be counted twice.
        metrics = (self.run_dir / "metrics.jsonl").open("a" if self.step else "w") if main else None
        if self.cfg.workers:
            loader = torch.utils.data.DataLoader(
                self.batches(self.step), batch_size=None, num_workers=self.cfg.workers,
                prefetch_factor=4, pin_memory=self.device.type == "cuda")
            self._ahead = iter(loader)
        try:
            while self.step < self.cfg.steps and not _over(budget, spent):
                t0, c0 = time.perf_counter(), time.process_time()
                log = self.train_step()
                self.step += 1
                # CPU seconds of this process: the fair clock when runs share the cores.
                log = {**log, "seconds": time.perf_counter() - t0,
                       "cpu_seconds": time.process_time() - c0}
                if self.world > 1:  # CPU seconds of all ranks; other figures: their mean
                    log = distributed.reduce_logs(log, sums=("cpu_seconds",))
                log = {"step": self.step, **log}
                if metrics is not None:
                    metrics.write(json.dumps(log) + "\n")
                    metrics.flush()
                spent = [spent[0] + log["cpu_seconds"], spent[1] + log["seconds"]]
                saved = (self.step % self.cfg.checkpoint_every == 0
                         or self.step == self.cfg.steps or _over(budget, spent))
                if saved:
                    self.save()
                if on_step is not None:
                    try:
                        on_step(self.step, log)
                    except StopTraining:
                        if not saved:
                            self.save()
                        raise
        finally:
            if metrics is not None:
                metrics.close()
            self._ahead = None
        if not (self.run_dir / "model.pt").is_file():
            self.save()
        return self.run_dir / "model.pt"


def _over(budget: tuple[float, float], spent: list[float]) -> bool:
    """Whether a time budget (CPU, wall seconds; 0: none) is spent."""
    return any(b and x >= b for b, x in zip(budget, spent, strict=True))


def train(cfg: TrainingConfig, progress: bool = True, dataset: Dataset | None = None,
          on_step: Callable[[int, dict[str, float]], None] | None = None) -> Path:
    """Train (resuming from cfg.out if it holds a run) with a Rich progress bar.

    on_step(step, log) is called after each step, as in `Trainer.run` (the bar too); an
    exception it raises stops the run there (StopTraining: with that step saved first)."""
    trainer = Trainer(cfg, dataset)
    resumed = trainer.resume_if_possible()
    if not progress or trainer.rank:  # one bar, on the first data-parallel rank
        return trainer.run(on_step)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]:.4f}  IoU {task.fields[iou]:.3f}  "
                          "{task.fields[speed]:.2f} steps/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns) as bar:
        if resumed:
            bar.console.print(f"resuming {cfg.out} at step {trainer.step}")
        task = bar.add_task("train", total=cfg.steps, completed=trainer.step, loss=float("nan"),
                            iou=float("nan"), speed=0.0)

        def step_with_bar(step: int, log: dict[str, float]) -> None:
            bar.update(task, completed=step, loss=log["loss"], iou=log["iou_first"],
                       speed=1.0 / max(log["seconds"], 1e-9))
            if on_step is not None:
                on_step(step, log)

        return trainer.run(step_with_bar)
