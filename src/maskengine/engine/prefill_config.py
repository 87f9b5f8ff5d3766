"""The settings of a pre-fill (stage 2): which masks are confident enough to propose.
A module of its own so that the command line reads the fields without loading the engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class PrefillConfig:
    """Which masks are confident enough to pre-fill. The defaults are conservative: on the
    benchmark's calibration scenes (benchmarks/stage2.py, docs/stage2.md) looser thresholds
    already gave precision@0.75 >= 0.9; a project may choose its own on images it knows."""

    min_detector_score: float = field(default=0.3, metadata={
        "help": "keep detections scoring at least this (0..1)"})
    min_predicted_iou: float = field(default=0.85, metadata={
        "help": "keep masks whose predicted IoU is at least this"})
    min_stability: float = field(default=0.9, metadata={
        "help": "keep masks whose stability score is at least this"})
    stability_offset: float = field(default=1.0, metadata={
        "help": "logit offset of the stability score"})
    nms_iou: float = field(default=0.5, metadata={
        "help": "box NMS among an image's proposals: drop above this IoU"})
    existing_iou: float = field(default=0.5, metadata={
        "help": "drop a proposal whose mask IoU with a mask the image has is above this"})
    min_area: int = field(default=16, metadata={"help": "drop masks below this many pixels"})
    max_masks: int = field(default=100, metadata={"help": "proposals per image at most"})
    multimask: bool = field(default=False, metadata={
        "help": "ask 3 masks per box and keep the most confident (else the single mask)"})
    split: str = field(default="train", metadata={
        "help": "images of this split ('train', 'val', 'all'); validation images are left "
                "to people by default so rounds and detectors are measured on masks no "
                "detector proposed"})

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        for name in ("min_detector_score", "min_predicted_iou", "min_stability", "nms_iou",
                     "existing_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_masks < 1 or self.min_area < 0:
            raise ValueError("max_masks must be >= 1 and min_area >= 0")

    def to_dict(self) -> dict:
        return asdict(self)
