"""Validation reports kept between rounds: a model validated on the same objects is not
evaluated again.

Each round compares the new model with the served one and with the version the rounds
started from, on the same validation objects. Those two were measured already when the
served model was itself new (or in the round before), so their per-object reports are
stored under `PROJECT/runs/val_reports/`, keyed by what makes a report: the model's
weights and config, the validation images and masks, the click protocol and the maskengine
version (the protocol's code). A round thus evaluates one model instead of three once the
project has a few rounds. A damaged file is evaluated again and rewritten.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import fields
from pathlib import Path

import numpy as np

from .. import __version__
from ..atomic import write_atomic
from ..evaluation import InteractiveReport
from .promotion import evaluate_model


def model_fingerprint(model) -> str:  # noqa: ANN001 - a Sam
    """SHA-256 of a model's config and weights (every tensor of its state dict, in order)."""
    import torch

    h = hashlib.sha256(repr(model.config).encode())
    for name, tensor in model.state_dict().items():
        h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def data_fingerprint(dataset) -> str:  # noqa: ANN001 - (image, masks) items by index
    """SHA-256 of a dataset's images and masks, in order."""
    h = hashlib.sha256()
    for i in range(len(dataset)):
        sample = dataset[i]
        for array in (sample.image, np.packbits(sample.masks, axis=-1)):
            h.update(str(array.shape).encode())
            h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


class ReportCache:
    """Per-object validation reports on one dataset, stored in `folder`."""

    def __init__(self, folder: Path, dataset, max_clicks: int) -> None:  # noqa: ANN001
        self.folder = Path(folder)
        self.dataset = dataset
        self.max_clicks = max_clicks
        self._data_key = f"{data_fingerprint(dataset)}/{max_clicks}/{__version__}"

    def path(self, model) -> Path:  # noqa: ANN001
        key = hashlib.sha256(f"{model_fingerprint(model)}/{self._data_key}".encode())
        return self.folder / f"{key.hexdigest()[:32]}.npz"

    def report(self, model) -> InteractiveReport:  # noqa: ANN001
        """The model's report on the dataset: stored, or evaluated now and stored."""
        path = self.path(model)
        if path.is_file():
            try:
                with np.load(path) as z:
                    return InteractiveReport(**{f.name: z[f.name]
                                                for f in fields(InteractiveReport)})
            except (OSError, ValueError, KeyError):
                pass  # damaged or from an older layout: evaluate again
        report = evaluate_model(model, self.dataset, self.max_clicks)
        buf = io.BytesIO()
        np.savez(buf, **{f.name: getattr(report, f.name) for f in fields(InteractiveReport)})
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buf.getvalue())
        return report
