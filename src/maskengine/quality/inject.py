"""Plant known errors in a project's accepted masks, to measure how well the checks find
them (the `check_errors` benchmark and the tests).

Kinds, each a mistake annotators make: `shift` (the outline moved by a fifth of the mask's
size), `erode` / `dilate` (the outline pulled in / pushed out by a tenth of its size, at
least 2 pixels), `swap` (two masks of one image exchange shapes: both are wrong), and
`duplicate` (an existing mask saved a second time, with the same clicks: the copy is the
error).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..engine import rle, services
from ..engine.models import Mask, User

KINDS = ("shift", "erode", "dilate", "swap", "duplicate")


@dataclass(frozen=True)
class Planted:
    mask_id: int
    kind: str


def _size(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return float(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))


def _shift(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = max(2.0, 0.2 * _size(mask))
    ang = rng.uniform(0, 2 * np.pi)
    dx, dy = int(round(d * np.cos(ang))), int(round(d * np.sin(ang)))
    m = np.roll(mask, (dy, dx), axis=(0, 1))
    # What rolls past an edge is cut, not wrapped round.
    if dy > 0:
        m[:dy] = False
    elif dy < 0:
        m[dy:] = False
    if dx > 0:
        m[:, :dx] = False
    elif dx < 0:
        m[:, dx:] = False
    return m


def _morph(mask: np.ndarray, grow: bool) -> np.ndarray:
    r = max(2, int(round(0.1 * _size(mask))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    op = cv2.dilate if grow else cv2.erode
    return op(mask.astype(np.uint8), kernel).astype(bool)


def plant_errors(project, fraction: float = 0.1, seed: int = 0,  # noqa: ANN001
                 kinds: tuple[str, ...] = KINDS, min_area: int = 60) -> list[Planted]:
    """Change about `fraction` of the live masks (those of at least `min_area` pixels, so
    that an eroded one is not empty) and return which masks are now wrong."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown error kind {k!r}; use some of {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    planted: list[Planted] = []
    with project.session() as s:
        admin = s.scalar(select(User).where(User.role == "admin").order_by(User.id))
        masks = list(s.scalars(select(Mask).where(Mask.deleted_at.is_(None))
                               .options(selectinload(Mask.interactions)).order_by(Mask.id)))
        eligible = [m for m in masks if m.area >= min_area]
        target = max(1, int(round(fraction * len(masks))))
        used: set[int] = set()
        done = 0  # injections so far: kinds take turns
        for m in rng.permutation(len(eligible)):
            if len(planted) >= target:
                break
            mask = eligible[m]
            if mask.id in used:
                continue
            kind = kinds[done % len(kinds)]
            image = mask.image
            bits = rle.decode(mask.rle_counts, image.height, image.width)
            if kind == "swap":
                others = [o for o in eligible if o.image_id == mask.image_id
                          and o.id not in used and o.id != mask.id]
                if not others:
                    continue
                other = others[int(rng.integers(len(others)))]
                a, b = mask.rle_counts, other.rle_counts
                for target_mask, counts in ((mask, b), (other, a)):
                    services.update_mask(s, mask_id=target_mask.id, user=admin, counts=counts,
                                         expected_version=target_mask.version)
                used |= {mask.id, other.id}
                planted += [Planted(mask.id, kind), Planted(other.id, kind)]
                done += 1
                continue
            if kind == "duplicate":
                events = json.loads(mask.interactions[0].events_json) if mask.interactions else []
                copy = services.create_mask(
                    s, image_id=mask.image_id, counts=mask.rle_counts, author=admin,
                    source=mask.source, interaction=services.InteractionData(
                        events=events, n_clicks=sum(e.get("type") == "point" for e in events)))
                used |= {mask.id, copy.id}
                planted.append(Planted(copy.id, kind))
                done += 1
                continue
            new = (_shift(bits, rng) if kind == "shift"
                   else _morph(bits, grow=kind == "dilate"))
            if new.sum() < 10 or np.array_equal(new, bits):
                continue
            services.update_mask(s, mask_id=mask.id, user=admin, counts=rle.encode(new).counts,
                                 expected_version=mask.version)
            used.add(mask.id)
            planted.append(Planted(mask.id, kind))
            done += 1
    return planted
