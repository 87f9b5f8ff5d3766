"""Training settings: one frozen dataclass; `maskengine train` options come from its fields."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


class StopTraining(Exception):  # noqa: N818 - reads as what it asks for
    """Raised by a training run's `on_step` callback to stop it after that step. The trainer
    saves its state first (whatever --checkpoint-every says), so the same run resumes from
    exactly there. (Here, not in trainer.py, so callers need not import torch.)"""


@dataclass(frozen=True)
class TrainingConfig:
    """The paper's recipe (simulated interaction, focal:dice 20:1 on the best mask, IoU MSE,
    AdamW with warmup and two /10 steps) with sizes small enough for a laptop by default."""

    out: str = field(default="runs/train", metadata={"help": "run folder (resumes if present)"})
    model: str = field(default="tiny", metadata={
        "help": "registered size (tiny, vit_b, ...) or a SamConfig JSON file"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "initial weights: a state_dict file, 'bundled', or none (from scratch)"})
    data: str = field(default="synthetic", metadata={
        "help": "'synthetic', 'synthetic:organic', an SA-1B folder, or a COCO instances JSON"})
    coco_images: str | None = field(default=None, metadata={
        "help": "image folder for a COCO JSON (default: next to the JSON)"})
    num_images: int = field(default=100_000, metadata={"help": "synthetic scenes in the stream"})
    data_seed: int = field(default=0, metadata={"help": "synthetic stream seed"})
    scene_size: int = field(default=256, metadata={"help": "synthetic scene side in pixels"})
    steps: int = field(default=2000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=4, metadata={"help": "images per micro-batch"})
    masks_per_image: int = field(default=8, metadata={"help": "masks sampled per image"})
    accumulate: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float = field(default=8e-4, metadata={"help": "peak learning rate (AdamW)"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=250, metadata={"help": "linear warmup steps"})
    first_decay: float = field(default=0.67, metadata={"help": "lr /10 at this fraction"})
    second_decay: float = field(default=0.89, metadata={"help": "lr /10 again here"})
    grad_clip: float = field(default=1.0, metadata={"help": "gradient norm clip (0: off)"})
    points: int = field(default=8, metadata={"help": "corrective points per interaction"})
    mask_only: int = field(default=2, metadata={
        "help": "iterations with no new point (one random, one last)"})
    grad_iterations: int = field(default=0, metadata={
        "help": "iterations that get a gradient: the first + random others (0: all)"})
    mask_hint: float = field(default=0.0, metadata={
        "help": "chance a step's first prompt also gets the true mask as mask prompt"})
    box_prob: float = field(default=0.5, metadata={"help": "chance the first prompt is a box"})
    focal_weight: float = field(default=20.0, metadata={"help": "focal loss weight"})
    focal_alpha: float = field(default=0.25, metadata={
        "help": "focal loss weight of foreground pixels (background gets 1 - alpha)"})
    dice_weight: float = field(default=1.0, metadata={"help": "dice loss weight"})
    iou_weight: float = field(default=1.0, metadata={"help": "IoU-head MSE weight"})
    anchor_weight: float = field(default=0.0, metadata={
        "help": "pull toward the starting weights (L2-SP): adds w * |p - p0|^2 (0: off)"})
    loss_size: int = field(default=0, metadata={
        "help": "side at which losses are computed (0: the low-res mask side)"})
    jitter: bool = field(default=False, metadata={"help": "large-scale jitter [0.1, 2.0]"})
    focus_views: float = field(default=0.0, metadata={
        "help": "share of samples shown as the focus pass sees them: a zoomed crop around a "
                "small mask (0: off)"})
    max_mask_fraction: float = field(default=0.9, metadata={
        "help": "drop masks covering more of the image"})
    freeze_image_encoder: bool = field(default=False, metadata={
        "help": "train prompt encoder + decoder only, image embeddings cached"})
    amp: bool = field(default=True, metadata={"help": "bfloat16 autocast on a GPU"})
    device: str | None = field(default=None, metadata={"help": "cpu, cuda, ... (default: auto)"})
    threads: int = field(default=0, metadata={"help": "torch CPU threads (0: default)"})
    workers: int = field(default=0, metadata={
        "help": "processes that build the next batches ahead (0: in the training loop)"})
    max_cpu_minutes: float = field(default=0.0, metadata={
        "help": "stop (saved) once the run's steps used this much CPU time (0: no limit)"})
    max_minutes: float = field(default=0.0, metadata={
        "help": "stop (saved) once the run's steps took this many wall-clock minutes "
                "(0: no limit)"})
    freeze_batchnorm: bool | None = field(default=None, metadata={
        "help": "keep batch-norm statistics fixed (TinyViT); default: when fine-tuning"})
    checkpoint_every: int = field(default=250, metadata={"help": "save every N steps"})
    keep_checkpoints: int = field(default=3, metadata={"help": "step checkpoints kept"})
    seed: int = field(default=0, metadata={"help": "seed for sampling and init"})

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "masks_per_image", "accumulate", "checkpoint_every",
                    "num_images", "scene_size", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.grad_iterations < 0:
            raise ValueError(f"grad_iterations must be >= 0, got {self.grad_iterations}")
        if self.points < 0 or self.mask_only < 0 or self.warmup_steps < 0:
            raise ValueError("points, mask_only and warmup_steps must be >= 0")
        for name in ("box_prob", "focus_views"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.focal_alpha < 1.0:
            raise ValueError(f"focal_alpha must be in (0, 1), got {self.focal_alpha}")
        if not 0.0 < self.first_decay <= self.second_decay:
            raise ValueError("need 0 < first_decay <= second_decay")
        if self.max_cpu_minutes < 0 or self.max_minutes < 0:
            raise ValueError(f"max_cpu_minutes and max_minutes must be >= 0, got "
                             f"{self.max_cpu_minutes} and {self.max_minutes}")
        if self.anchor_weight < 0:
            raise ValueError(f"anchor_weight must be >= 0, got {self.anchor_weight}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
