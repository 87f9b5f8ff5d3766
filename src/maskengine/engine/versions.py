"""Model versions of a project: which one serves, promoting one, loading its weights."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..config import SamConfig
from .models import ModelVersion, utcnow
from .store import Project


class RoundError(ValueError):
    """A round that cannot start (no accepted masks, no served model, ...)."""



def register_model_version(
    s: Session, *, key: str, name: str, config: dict, checkpoint: str | None,
    checkpoint_sha256: str | None, round: int = 0, parent_id: int | None = None,
) -> ModelVersion:
    """Find the model version with `key` or create it."""
    mv = s.scalar(select(ModelVersion).where(ModelVersion.key == key))
    if mv is None:
        mv = ModelVersion(key=key, name=name, config_json=json.dumps(config),
                          checkpoint=checkpoint, checkpoint_sha256=checkpoint_sha256,
                          round=round, parent_id=parent_id)
        s.add(mv)
        s.flush()
    return mv


def served_version(s: Session) -> ModelVersion | None:
    """The model version that serves annotators: the one promoted last."""
    q = (select(ModelVersion).where(ModelVersion.promoted_at.is_not(None))
         .order_by(ModelVersion.promoted_at.desc(), ModelVersion.id.desc()).limit(1))
    return s.scalar(q)


def starting_version(s: Session, mv: ModelVersion) -> ModelVersion:
    """The version `mv`'s rounds started from: its ancestor without a parent."""
    seen = {mv.id}
    while mv.parent_id is not None:
        mv = s.get(ModelVersion, mv.parent_id)
        if mv is None or mv.id in seen:
            raise RoundError(f"the parents of model version {next(iter(seen))} do not lead "
                             f"back to a starting version (a missing or circular parent)")
        seen.add(mv.id)
    return mv


def promote(s: Session, mv: ModelVersion, note: str | None = None) -> None:
    mv.promoted_at = utcnow()
    if note is not None:
        mv.note = note
    s.flush()


def weights_path(project: Project, mv: ModelVersion) -> Path | None:
    """The weights file of a version (stored relative to the project when inside it)."""
    if not mv.checkpoint:
        return None
    p = Path(mv.checkpoint)
    return p if p.is_absolute() else project.root / p


def load_version(project: Project, mv: ModelVersion, device: str = "cpu"):  # noqa: ANN201
    """The Sam of a registered version (its config + weights file)."""
    from ..modeling import create_model

    config = SamConfig(**json.loads(mv.config_json))
    path = weights_path(project, mv)
    if path is not None and not path.is_file():
        raise RoundError(f"model version {mv.id} (round {mv.round}): weights file {path} "
                         f"is missing")
    return create_model(config, checkpoint=path, device=device)


def relative_path(project: Project, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.root))
    except ValueError:
        return str(path.resolve())
