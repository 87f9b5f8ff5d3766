"""maskengine: an open data engine for promptable image segmentation.

Public API only; nothing is built at import time.
"""

from .config import SamConfig, TinyViTConfig
from .generator import GeneratorConfig, MaskGenerator, MaskRecord
from .modeling import CheckpointError, Sam, create_model
from .predictor import Predictor

__all__ = [
    "CheckpointError", "GeneratorConfig", "MaskGenerator", "MaskRecord", "Predictor", "Sam",
    "SamConfig", "TinyViTConfig", "create_model",
]
__version__ = "0.1.0"
