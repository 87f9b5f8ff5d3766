"""The promotion gate of a round: is the new model worse than the served one on validation?

Both models run the evaluation protocol on the same validation objects, in the same order,
so their figures pair object by object. The gate compares the two figures that decide
promotion, the first-click IoU (mIoU@1) and the clicks to IoU 0.9 (NoC@90), and calls the
new model worse only when a figure moved the wrong way by more than `tolerance` plus
`noise_z` standard errors of the paired per-object difference. On a few hundred validation
objects NoC@90 moves by a few tenths between two equally good models (clicks are whole
numbers, capped at `max_clicks`); without the noise term such a move blocks a model that is
better at the first click (benchmarks/data_engine.py). `noise_z = 0` is the strict rule.

Small losses within the noise could still add up over rounds, so `gate` also compares the
new model with the version the project's rounds started from, under the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..evaluation import InteractiveReport, clicks_to


def evaluate_model(model, dataset, max_clicks: int) -> InteractiveReport:  # noqa: ANN001
    """The evaluation protocol on a dataset of (image, masks) items (a ProjectDataset or an
    evaluation set) -> the per-object report. The model answers as the annotation page
    serves it: with the focus pass where that is its default (`focus.click_predictor`)."""
    from ..evaluation import evaluate_interactive
    from ..focus import click_predictor

    samples = ((dataset[i].image, dataset[i].masks) for i in range(len(dataset)))
    return evaluate_interactive(click_predictor(model), samples, max_clicks=max_clicks)


def validate(model, dataset, max_clicks: int) -> dict:  # noqa: ANN001
    """The evaluation protocol on the accepted validation masks -> summary dict."""
    return evaluate_model(model, dataset, max_clicks).summary()


@dataclass(frozen=True)
class PairedChange:
    """One figure's change from the served model to the new one, object by object."""

    old: float
    new: float
    se: float  # standard error of the mean paired difference (0 for one object)

    @classmethod
    def of(cls, old: np.ndarray, new: np.ndarray) -> PairedChange:
        d = np.asarray(new, np.float64) - np.asarray(old, np.float64)
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0
        return cls(float(np.mean(old)), float(np.mean(new)), se)

    def to_dict(self) -> dict:
        return {"old": self.old, "new": self.new, "se": self.se}


def judge(new: InteractiveReport, old: InteractiveReport, tolerance: float = 0.0,
          noise_z: float = 2.0) -> tuple[str | None, dict]:
    """Why `new` is worse than `old` (None: it is not), and the paired changes of mIoU@1 and
    NoC@90. mIoU@1 may fall by `tolerance` and NoC@90 rise by 20 x `tolerance`, each plus
    `noise_z` standard errors."""
    if new.default.shape != old.default.shape:
        raise ValueError(f"the two models were validated on different objects: "
                         f"{new.default.shape} against {old.default.shape}")
    miou = PairedChange.of(old.default[:, 0], new.default[:, 0])
    noc = PairedChange.of(clicks_to(old.default, 0.9), clicks_to(new.default, 0.9))
    changes = {"miou@1": miou.to_dict(), "noc@90": noc.to_dict(), "noise_z": noise_z}
    allow_miou = tolerance + noise_z * miou.se
    allow_noc = 20 * tolerance + noise_z * noc.se
    if miou.new < miou.old - allow_miou:
        return (f"validation mIoU@1 fell from {miou.old:.3f} to {miou.new:.3f} "
                f"(more than the {allow_miou:.3f} allowed)"), changes
    if noc.new > noc.old + allow_noc:
        return (f"validation NoC@90 rose from {noc.old:.2f} to {noc.new:.2f} "
                f"(more than the {allow_noc:.2f} allowed)"), changes
    return None, changes


def promotion_note(changes: dict) -> str:
    """The note of a promoted round: both figures, and 'within noise' for a figure that
    moved the wrong way but not beyond what the gate allows."""
    m, n = changes["miou@1"], changes["noc@90"]
    parts = [f"validation mIoU@1 {m['old']:.3f} -> {m['new']:.3f}",
             f"NoC@90 {n['old']:.2f} -> {n['new']:.2f}"]
    if m["new"] < m["old"]:
        parts[0] += f" (within noise: s.e. {m['se']:.3f})"
    if n["new"] > n["old"]:
        parts[1] += f" (within noise: s.e. {n['se']:.2f})"
    return "promoted: " + ", ".join(parts)


def gate(new: InteractiveReport, served: InteractiveReport, start_name: str,
         start: Callable[[], InteractiveReport] | None, tolerance: float = 0.0,
         noise_z: float = 2.0) -> tuple[str | None, str, dict]:
    """The promotion decision: why the new model is worse than the served one or than the
    starting version `start_name` (None: promote), the note of a promoted round, and the
    figures for the round's metrics. `start` evaluates the starting version (None when it is
    the served one); it runs only when the new model passed against the served one."""
    why, changes = judge(new, served, tolerance, noise_z)
    figures = {"parent_val": served.summary(), "promotion": changes}
    note = promotion_note(changes)
    if start is None or why:
        return why, note, figures
    first = start()
    first_why, first_changes = judge(new, first, tolerance, noise_z)
    figures |= {"start_val": first.summary(), "promotion_vs_start": first_changes}
    note += (f"; against the starting {start_name}: "
             + promotion_note(first_changes).removeprefix("promoted: "))
    if first_why:
        why = f"against the starting {start_name}: {first_why}"
    return why, note, figures
