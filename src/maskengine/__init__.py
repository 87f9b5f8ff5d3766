"""maskengine: an open data engine for promptable image segmentation.

Public API only; nothing is built at import time. The configs import at once; the
network, predictor and generator (and torch with them) load on first use, so
`import maskengine` and the command line start quickly.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import GeneratorConfig, SamConfig, TinyViTConfig

if TYPE_CHECKING:  # what the lazy names below resolve to
    from .generator import MaskGenerator, MaskRecord
    from .modeling import CheckpointError, Sam, create_model
    from .predictor import Predictor

_LAZY = {
    "CheckpointError": ".modeling", "Sam": ".modeling", "create_model": ".modeling",
    "MaskGenerator": ".generator", "MaskRecord": ".generator", "Predictor": ".predictor",
}

__all__ = [
    "CheckpointError", "GeneratorConfig", "MaskGenerator", "MaskRecord", "Predictor", "Sam",
    "SamConfig", "TinyViTConfig", "create_model",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
