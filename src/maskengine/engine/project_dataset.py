"""The accepted masks of a project as a dataset: what a round trains and validates on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import or_, select

from ..data.types import Sample
from . import rle
from .models import Image, Mask, MaskSource, PrefillState, ReviewState
from .store import Project


def accepted(q):  # noqa: ANN001, ANN201 - a SQLAlchemy select over Mask
    """Restrict a select over Mask to accepted masks: live and not rejected by a reviewer;
    an automatic mask (made by no person) only once a reviewer approved it; a pre-filled mask
    not while it waits for a person's decision."""
    return q.where(Mask.deleted_at.is_(None), Mask.review_state != ReviewState.rejected.value,
                   or_(Mask.source != MaskSource.automatic.value,
                       Mask.review_state == ReviewState.approved.value),
                   Mask.prefill_state != PrefillState.proposed.value)


@dataclass(frozen=True)
class _Entry:
    path: Path
    height: int
    width: int
    counts: tuple[str, ...]


class ProjectDataset:
    """Images of one split with their accepted masks, as `Sample`s (image H x W x 3 uint8,
    masks N x H x W bool). A snapshot: masks accepted later are not seen."""

    def __init__(self, project: Project, split: str = "train", max_images: int = 0) -> None:
        with project.session() as s:
            rows = s.execute(accepted(
                select(Image, Mask.rle_counts).join(Mask, Mask.image_id == Image.id)
                .where(Image.split == split).order_by(Image.id, Mask.id)
            )).all()
        by_image: dict[int, list] = {}
        for image, counts in rows:
            by_image.setdefault(image.id, [project.image_path(image), image.height,
                                           image.width, []])[3].append(counts)
        entries = [_Entry(p, h, w, tuple(c)) for p, h, w, c in by_image.values()]
        self.entries = entries[:max_images] if max_images else entries
        self.split = split

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def num_masks(self) -> int:
        return sum(len(e.counts) for e in self.entries)

    def __getitem__(self, index: int) -> Sample:
        e = self.entries[index]
        with PILImage.open(e.path) as im:
            image = np.asarray(im.convert("RGB"))
        if image.shape[:2] != (e.height, e.width):
            raise ValueError(f"{e.path} is {image.shape[1]}x{image.shape[0]}, the store says "
                             f"{e.width}x{e.height}: the file changed after it was added")
        masks = np.stack([rle.decode(c, e.height, e.width) for c in e.counts])
        return Sample(image=image, masks=masks, name=e.path.stem)
