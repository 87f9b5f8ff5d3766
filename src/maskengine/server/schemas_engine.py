"""Request and response bodies of the data engine's own routes: model-in-the-loop rounds
and stage-2 pre-filling (the annotation bodies are in `schemas`)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .schemas import Counts, DbId, DbInt, Finite, InteractionIn, ShapeIn


# -- model-in-the-loop rounds ----------------------------------------------------------------
class RoundIn(BaseModel):
    """Optional overrides of the round's fine-tuning recipe (the rest: server defaults)."""

    model_config = ConfigDict(extra="forbid")
    steps: int | None = Field(None, ge=1, le=100_000, description="training steps")
    lr: Finite | None = Field(None, gt=0, description="peak learning rate")
    force: bool = Field(False, description="promote even with no validation masks to "
                                           "compare on (otherwise such a round is kept)")


class RoundRow(BaseModel):
    """One model version and the annotation it served (see engine.rounds.RoundStats)."""

    version_id: int
    round: int
    name: str
    promoted: bool
    serving: bool
    note: str | None
    masks: int = Field(description="accepted masks made while this version served")
    images: int = Field(description="images those masks are on")
    seconds_per_mask: float | None
    clicks_per_mask: float | None
    masks_per_image: float | None
    val_miou1: float | None = Field(description="validation mIoU after 1 click")
    val_noc90: float | None = Field(description="validation clicks to IoU 0.9")
    train_seconds: float | None
    det_ap50: float | None = Field(None, description="validation AP50 of the detector "
                                   "retrained after this round (stage 2)")
    det_recall: float | None = Field(None, description="its validation recall at IoU 0.5")


class RoundLast(BaseModel):
    version_id: int
    round: int
    promoted: bool
    note: str


class RoundProgress(BaseModel):
    """Training of the running round after its latest step (see round_runner.TrainProgress)."""

    step: int = Field(description="steps done, counting those of a run this round resumed")
    steps: int = Field(description="steps the round trains in all")
    loss: float | None = Field(description="training loss of the latest step")
    iou: float | None = Field(description="mean IoU of the first prompt's masks, latest step")
    steps_per_s: float = Field(description="training speed over this run's steps")
    eta_s: float = Field(description="seconds of training left at that speed")


class RoundsOut(BaseModel):
    rows: list[RoundRow]
    running: bool
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    last: RoundLast | None = Field(description="the round that finished last in this server")
    error: str | None = Field(description="why the last round started here failed")
    log: list[str] = Field(description="progress lines of the running or last round")
    defaults: dict[str, int | float] = Field(description="steps and lr a round uses when not given")
    phase: Literal["starting", "training", "validating", "registering", "detector",
                   "cancelling"] | None = (
        Field(description="what the running round does now (None: none runs)"))
    progress: RoundProgress | None = Field(
        description="training progress of the running round, or where the last one stopped")
    cancelled: bool = Field(description="the last round started here was cancelled")


# -- stage 2: pre-filling ----------------------------------------------------------------------
class PrefillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    images: list[DbId] | None = Field(None, max_length=100_000, description=(
        "image ids to pre-fill (default: every image of the train split not marked done)"))


class DetectorPublic(BaseModel):
    id: int
    name: str
    model_version_id: int
    ap50: float | None = Field(description="validation AP at IoU 0.5")
    recall50: float | None = Field(description="validation recall at IoU 0.5")


class PrefillOut(BaseModel):
    running: bool
    phase: Literal["starting", "detector", "prefilling"] | None = Field(
        description="detector: training a detector first (the served model had none)")
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    done: int = Field(description="images pre-filled by the running (or last) run")
    total: int
    last: dict | None = Field(description="summary of the last run: images, skipped, "
                              "detections, proposed, seconds, detector_id")
    error: str | None
    detector: DetectorPublic | None = Field(description="the served model's detector")
    stats: dict = Field(description="pre-filled masks by state; decisions (count, seconds)")


class DecisionIn(BaseModel):
    """A person's decision on a proposed pre-filled mask."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["confirm", "edit", "reject"]
    version: DbInt = Field(description="the version you decided on; a stale one gives 409")
    counts: Counts | None = Field(None, description="the edited mask (edit only)")
    shape: ShapeIn | None = Field(None, description="instead of counts: the edit for the "
                                  "server to make, as for PUT /masks/{id}")
    interaction: InteractionIn | None = Field(
        None, description="the seconds (and clicks) the decision took")

    @model_validator(mode="after")
    def _one_shape(self) -> DecisionIn:
        if self.counts is not None and self.shape is not None:
            raise ValueError("give counts or shape, not both")
        return self
