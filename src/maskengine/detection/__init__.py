"""Stage 2 of the data engine: a one-class ("object") box detector on the SAM image
embedding, trained on the boxes of the accepted masks (`maskengine.engine.detectors` joins it
to a project; `maskengine.engine.prefill` uses it to pre-fill masks).

The config imports at once (the command line reads its fields); the network and its
training load torch on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .config import DetectorConfig

if TYPE_CHECKING:
    from .head import Detection, DetectorHead, decode_detections
    from .metrics import DetectionReport, evaluate_detections
    from .train import DetectorSample, train_detector_head

_LAZY = {"Detection": ".head", "DetectorHead": ".head", "decode_detections": ".head",
         "DetectionReport": ".metrics", "evaluate_detections": ".metrics",
         "DetectorSample": ".train", "train_detector_head": ".train"}

__all__ = ["Detection", "DetectionReport", "DetectorConfig", "DetectorHead", "DetectorSample",
           "decode_detections", "evaluate_detections", "train_detector_head"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
