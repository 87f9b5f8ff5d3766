"""Scenes are a pure function of (family, size, seed, index): a model was trained on them
and evaluations use fixed seeds, so any change to the painting code must leave them
byte-identical. The digests were computed before the painting loop was shared."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import numpy as np
import pytest

from maskengine.data.scenes import FAMILIES
from maskengine.data.synthetic import GENERATORS, SceneConfig, generate_scene

PINNED = {
    "shapes:64:0:0": "44bf98e79aca6b43",
    "shapes:64:0:1": "e08507043ffc86f1",
    "shapes:64:7:3": "481fc0907b7f1206",
    "shapes:64:3000:12": "f37e8c0951866239",
    "shapes:128:0:0": "f7c2e26386ff9b0a",
    "shapes:128:0:1": "0b26a5bb3f2693a0",
    "shapes:128:7:3": "1d0c11a0977493f7",
    "shapes:128:3000:12": "221dbcc1267b314b",
    "organic:64:0:0": "ef519900244b4da1",
    "organic:64:0:1": "c5452ea6d670e817",
    "organic:64:7:3": "9e9c788a0602bc64",
    "organic:64:3000:12": "cf48fe6ef1e8b0e0",
    "organic:128:0:0": "8f13585e5d599960",
    "organic:128:0:1": "b85a42d92be9ffba",
    "organic:128:7:3": "23001c50aeaac917",
    "organic:128:3000:12": "c6e52972a4866567",
}


def digest(family: str, size: int, seed: int, index: int) -> str:
    s = generate_scene(SceneConfig(height=size, width=size, family=family), seed, index)
    h = hashlib.sha256()
    for a in (s.image, s.masks, s.levels, s.parents):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(str(a.shape).encode())
    h.update(s.name.encode())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("key", sorted(PINNED))
def test_scene_bytes_are_pinned(key):
    family, size, seed, index = key.split(":")
    assert digest(family, int(size), int(seed), int(index)) == PINNED[key]


def test_every_family_has_one_generator():
    assert tuple(GENERATORS) == FAMILIES


def test_scene_modules_import_without_a_cycle():
    # The families import the shared painting; only synthetic (which chooses) imports a family.
    import maskengine.data.organic as organic
    import maskengine.data.scenes as scenes

    def imported(module) -> set[str]:
        tree = ast.parse(Path(module.__file__).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    assert "synthetic" not in imported(organic)
    assert not {"synthetic", "organic"} & imported(scenes)
