"""Training: the paper's recipe (simulated interaction, focal + dice + IoU losses).

`TrainingConfig` imports without torch; the trainer loads on first use, so the command
line stays quick to start.
"""

from __future__ import annotations

from typing import Any

from .config import StopTraining, TrainingConfig

__all__ = ["StopTraining", "Trainer", "TrainingConfig", "build_model", "train"]


def __getattr__(name: str) -> Any:
    if name in ("Trainer", "build_model", "train"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
