"""Health (no token), the current user and the active model."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import StateDep, UserDep
from ..schemas import Health, ModelPublic, UserPublic

router = APIRouter(tags=["system"])


@router.get("/health", response_model=Health)
def health() -> Health:
    """Liveness probe; the only route that needs no token."""
    return Health(status="ok")


@router.get("/me", response_model=UserPublic)
def me(user: UserDep) -> UserPublic:
    return UserPublic(id=user.id, name=user.name, role=user.role)


@router.get("/model", response_model=ModelPublic)
def model(state: StateDep, _user: UserDep) -> ModelPublic:
    seg = state.segmenter
    return ModelPublic(id=seg.model_version_id, name=state.model_name, round=state.model_round,
                       image_size=seg.model.config.image_size, low_res_size=seg.low_res_size)
