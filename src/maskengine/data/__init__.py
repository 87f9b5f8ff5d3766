"""Datasets: synthetic scenes, SA-1B folders and COCO instances files, all yielding
`Sample` records (image H x W x 3 uint8, masks N x H x W bool)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from .synthetic import FAMILIES, SceneConfig, SyntheticDataset, generate_scene
from .types import Sample, drop_large


class Dataset(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Sample: ...


def open_dataset(cfg: object) -> Dataset:
    """The dataset a training/eval config names in its `data` field: 'synthetic' or
    'synthetic:<family>' (e.g. 'synthetic:organic'; with num_images, data_seed, scene_size),
    an SA-1B folder, or a COCO instances JSON file."""
    spec = str(cfg.data)  # type: ignore[attr-defined]
    if spec == "synthetic" or spec.startswith("synthetic:"):
        family = spec.partition(":")[2] or "shapes"
        if family not in FAMILIES:
            raise ValueError(f"data {spec!r}: scene family {family!r} is not one of "
                             f"{', '.join(FAMILIES)}")
        size = int(cfg.scene_size)  # type: ignore[attr-defined]
        return SyntheticDataset(int(cfg.num_images), int(cfg.data_seed),  # type: ignore[attr-defined]
                                SceneConfig(height=size, width=size, family=family))
    path = Path(spec)
    max_fraction = float(getattr(cfg, "max_mask_fraction", 0.9))
    if path.is_dir():
        from .sa1b import SA1BDataset

        return SA1BDataset(path, max_mask_fraction=max_fraction)
    if path.is_file() and path.suffix == ".json":
        from .coco import CocoDataset

        images = getattr(cfg, "coco_images", None)
        return CocoDataset(path, images, max_mask_fraction=max_fraction)
    raise ValueError(f"data {spec!r} is not 'synthetic', 'synthetic:<family>', an SA-1B "
                     "folder or a COCO JSON file")


__all__ = ["Dataset", "Sample", "SceneConfig", "SyntheticDataset", "drop_large",
           "generate_scene", "open_dataset"]
