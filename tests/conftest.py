"""Shared fixtures: the reference model of the official architecture and its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def reference_config():
    from maskengine import SamConfig

    return SamConfig(**json.loads((REFERENCE / "config.json").read_text()))


@pytest.fixture(scope="session")
def reference_model(reference_config):
    from maskengine import create_model

    return create_model(reference_config, checkpoint=REFERENCE / "checkpoint.pt")


def load_reference_image(i: int) -> np.ndarray:
    return np.array(Image.open(REFERENCE / f"image{i}.png").convert("RGB"))
