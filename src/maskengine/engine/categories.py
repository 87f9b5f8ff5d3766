"""Optional mask classes of a project. A project without categories is class-agnostic (its
masks have no category and export as one "object" class); one with categories lets
annotators give each mask a class (keys 1-9 in the page), exported as COCO categories."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import Conflict, InvalidField
from .models import Category

MAX_NAME = 100


def list_categories(s: Session) -> list[Category]:
    """The project's categories in the order they were added (id order)."""
    return list(s.scalars(select(Category).order_by(Category.id)))


def clean_name(name: str) -> str:
    """A category name as stored: stripped; refused when empty or too long."""
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidField(("body", "name"),
                           f"a category name must have 1 to {MAX_NAME} characters, got {name!r}")
    return name


def add_categories(s: Session, names: list[str]) -> list[Category]:
    """Add categories by name (in order); a name that exists already is refused (Conflict),
    and then none of `names` is added."""
    cleaned = [clean_name(n) for n in names]
    dupes = sorted({n for n in cleaned if cleaned.count(n) > 1})
    if dupes:
        raise InvalidField(("body", "name"), f"category names given twice: {', '.join(dupes)}")
    existing = set(s.scalars(select(Category.name).where(Category.name.in_(cleaned))))
    if existing:
        raise Conflict(f"categories exist already: {', '.join(sorted(existing))}")
    out = [Category(name=n) for n in cleaned]
    s.add_all(out)
    s.flush()
    return out


def check_category(s: Session, category_id: int | None,
                   loc: tuple[str, ...] = ("body", "category_id")) -> None:
    """Refuse a category (of a mask, or a filter's at `loc`) that the project does not have."""
    if category_id is not None and s.get(Category, category_id) is None:
        raise InvalidField(loc, f"category {category_id} does not exist")


def coco_categories(s: Session, masks_category_ids: set[int | None]) -> tuple[list[dict], dict]:
    """COCO `categories` and a map mask.category_id -> COCO category id. A class-agnostic
    project exports one "object" category (id 1); a project with classes exports them by
    their ids, plus an "unlabelled" category when some exported mask has no class."""
    cats = list_categories(s)
    if not cats:
        return [{"id": 1, "name": "object", "supercategory": "object"}], {None: 1}
    out = [{"id": c.id, "name": c.name, "supercategory": "object"} for c in cats]
    mapping: dict = {c.id: c.id for c in cats}
    if None in masks_category_ids:
        mapping[None] = max(c.id for c in cats) + 1
        out.append({"id": mapping[None], "name": "unlabelled", "supercategory": "object"})
    return out, mapping
