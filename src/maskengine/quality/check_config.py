"""What `maskengine check` and `maskengine drift` look for: their settings alone, so the
command line can list their options without loading numpy or the database layer
(`maskengine.quality.checks` and `maskengine.quality.drift` do the work)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CheckConfig:
    model: bool = field(default=True, metadata={
        "help": "re-ask the served model with each mask's box and clicks"})
    duplicate_iou: float = field(default=0.85, metadata={
        "help": "two masks of one image above this mask IoU are duplicates"})
    overlap_iou: float = field(default=0.5, metadata={
        "help": "... above this (and below duplicate-iou) they are listed as overlaps"})
    min_area: int = field(default=20, metadata={"help": "masks under this many pixels"})
    max_components: int = field(default=3, metadata={
        "help": "masks in more pieces than this are fragmented"})
    max_coverage: float = field(default=0.9, metadata={
        "help": "masks covering more than this share of the image"})
    hash_distance: int = field(default=4, metadata={
        "help": "images whose 64-bit dHash differ in at most this many bits are near "
                "duplicates (-1: skip)"})
    embedding_cosine: float = field(default=0.0, metadata={
        "help": "also compare the served model's cached image embeddings (mean-pooled): "
                "pairs above this cosine similarity are near duplicates (0: skip)"})
    device: str = field(default="cpu", metadata={"help": "device for the model"})

    def __post_init__(self) -> None:
        if not 0 < self.overlap_iou <= self.duplicate_iou <= 1:
            raise ValueError("need 0 < overlap_iou <= duplicate_iou <= 1")
        if not 0 < self.max_coverage <= 1:
            raise ValueError(f"max_coverage must be in (0, 1], got {self.max_coverage}")
        if self.min_area < 0 or self.max_components < 1:
            raise ValueError("min_area must be >= 0 and max_components >= 1")
        if not 0 <= self.embedding_cosine <= 1:
            raise ValueError(f"embedding_cosine must be in [0, 1], got {self.embedding_cosine}")


@dataclass(frozen=True)
class DriftConfig:
    neighbours: int = field(default=5, metadata={
        "help": "nearest training images an image's distance is averaged over"})
    threshold: float = field(default=1.5, metadata={
        "help": "flag images farther than this many times the median training image is "
                "from the other training images"})
    device: str = field(default="cpu", metadata={"help": "device for the model"})

    def __post_init__(self) -> None:
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if self.threshold <= 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
