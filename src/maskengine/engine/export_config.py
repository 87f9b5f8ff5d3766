"""What `maskengine export` writes: its settings alone, so the command line can list its
options without loading the database layer (`maskengine.engine.export` does the work)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ExportConfig:
    format: Literal["sa1b", "coco"] = field(
        default="sa1b", metadata={"help": "sa1b: one JSON per image; coco: one JSON"})
    split: Literal["all", "train", "val"] = field(
        default="all", metadata={"help": "which images to export"})
    approved_only: bool = field(
        default=False, metadata={"help": "only masks a reviewer approved"})
    with_images: bool = field(
        default=False, metadata={"help": "sa1b: copy the images beside the JSON files, so "
                                 "the folder is a training set (maskengine.data.SA1BDataset)"})
    category: str = field(
        default="", metadata={"help": "only masks of these classes (comma-separated names; "
                              "default: all masks)"})
    version: str = field(
        default="", metadata={"help": "export this snapshot (`maskengine snapshot`) instead "
                              "of the current masks"})

    def __post_init__(self) -> None:
        if self.format not in ("sa1b", "coco"):
            raise ValueError(f"format must be sa1b or coco, got {self.format!r}")
        if self.split not in ("all", "train", "val"):
            raise ValueError(f"split must be all, train or val, got {self.split!r}")
