"""Categories: the project's optional mask classes (read by everyone, added by admins)."""

from __future__ import annotations

from fastapi import APIRouter, status

from ...engine import services
from ...engine.categories import add_categories, list_categories
from ..deps import SessionDep, UserDep
from ..schemas import CategoriesIn, CategoryPublic

router = APIRouter(prefix="/categories", tags=["categories"])


@router.get("", response_model=list[CategoryPublic])
def get_categories(session: SessionDep, _user: UserDep) -> list[CategoryPublic]:
    """The classes in the order they were added (keys 1-9 in the page pick the first nine);
    empty for a class-agnostic project."""
    return [CategoryPublic(id=c.id, name=c.name) for c in list_categories(session)]


@router.post("", response_model=list[CategoryPublic], status_code=status.HTTP_201_CREATED)
def post_categories(body: CategoriesIn, session: SessionDep, user: UserDep) -> list[CategoryPublic]:
    """Add classes (admins): all of them, or none when one exists already (409)."""
    services.require_admin(user)
    return [CategoryPublic(id=c.id, name=c.name) for c in add_categories(session, body.names)]
