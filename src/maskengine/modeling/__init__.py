"""The SAM network. Imports only torch."""

from .registry import MODEL_CONFIGS, CheckpointError, create_model, infer_config, load_checkpoint
from .sam import Sam

__all__ = ["MODEL_CONFIGS", "CheckpointError", "Sam", "create_model", "infer_config",
           "load_checkpoint"]
