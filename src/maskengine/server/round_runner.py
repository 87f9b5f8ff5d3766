"""Running a model-in-the-loop round inside the server process, started from the web page.

`RoundRunner` runs `engine.rounds.run_round` in one background thread at a time, keeps what
the page shows while it runs (started at, phase, training progress, log lines) and what it
ended with (the new version, the error, or a cancel), and switches the served model right
after a promotion instead of waiting for the watcher's next poll. Prediction requests keep
being answered while the round trains (they share the CPU with it).

`cancel` stops a running round at its next training step (or before validation or
registering): the round's own callbacks raise RoundCancelled, so nothing is registered, the
round lock is released, and the run folder stays for the next round to resume from.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..engine.rounds import (
    RoundCancelled,
    RoundConfig,
    RoundError,
    RoundResult,
    round_running,
    run_round,
)
from ..engine.store import Project

log = logging.getLogger("maskengine.server")

MAX_LOG_LINES = 50


@dataclass(frozen=True)
class RoundOutcome:
    """The round that finished last."""

    version_id: int
    round: int
    promoted: bool
    note: str


@dataclass(frozen=True)
class TrainProgress:
    """Training of the running round after its latest step. loss and iou (the mean IoU of
    the first prompt's masks) are None when not finite; steps_per_s is measured over the
    steps this run did (wall clock, checkpoint writes included), eta_s assumes it holds."""

    step: int  # steps done, counting those of a run this round resumed
    steps: int
    loss: float | None
    iou: float | None
    steps_per_s: float
    eta_s: float


@dataclass(frozen=True)
class RunnerState:
    """A consistent snapshot of the runner (times are UTC). phase: None when idle, else
    "starting", "training", "validating", "registering", "detector" or "cancelling"."""

    running: bool
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    last: RoundOutcome | None
    error: str | None
    log: tuple[str, ...]
    phase: str | None = None
    progress: TrainProgress | None = None  # of the running round, or where the last stopped
    cancelled: bool = False  # the last round ended by `cancel`


class RoundBusy(RuntimeError):
    """A round was asked for while one is running."""


class NoRound(RuntimeError):
    """A cancel was asked for while no round runs."""


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class RoundRunner:
    """One round at a time in a background thread.

    `template` is the RoundConfig every round starts from (the page may override the
    number of steps and the learning rate of its training); `run` is the round function
    (`run_round`; replaceable, e.g. by a wrapper that waits, so a test can hold a round);
    `on_promoted` is called after a promotion (the app passes the watcher's `check`)."""

    def __init__(self, project: Project, on_promoted: Callable[[], object],
                 template: RoundConfig | None = None) -> None:
        self.project = project
        self.on_promoted = on_promoted
        self.template = template or RoundConfig()
        self.run: Callable[..., RoundResult] = run_round
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._running = False
        self._started_at: dt.datetime | None = None
        self._finished_at: dt.datetime | None = None
        self._last: RoundOutcome | None = None
        self._error: str | None = None
        self._log: list[str] = []
        self._phase: str | None = None
        self._progress: TrainProgress | None = None
        self._cancelled = False
        self._cancel = threading.Event()
        self._first_step: tuple[int, float] | None = None  # (step before it, its start time)

    def config(self, overrides: dict | None = None, force: bool = False) -> RoundConfig:
        """The template with TrainingConfig field overrides on top (validated by
        TrainingConfig itself: a bad value raises ValueError); `force` promotes without
        validation masks."""
        cfg = dataclasses.replace(self.template, force=True) if force else self.template
        if not overrides:
            return cfg
        training = dataclasses.replace(cfg.training, **overrides)
        return dataclasses.replace(cfg, training=training)

    def state(self) -> RunnerState:
        with self._lock:
            return RunnerState(running=self._running, started_at=self._started_at,
                               finished_at=self._finished_at, last=self._last,
                               error=self._error, log=tuple(self._log), phase=self._phase,
                               progress=self._progress, cancelled=self._cancelled)

    def start(self, overrides: dict | None = None, force: bool = False) -> RunnerState:
        """Start a round; raises RoundBusy when one is running, ValueError for bad
        overrides. Returns the state right after starting (running is True)."""
        cfg = self.config(overrides, force)
        with self._lock:
            if self._running:
                raise RoundBusy(f"a round is running since {self._started_at:%H:%M:%S} UTC")
            if round_running(self.project):
                raise RoundBusy("a round of this project is running in another process "
                                "(maskengine train PROJECT)")
            self._running, self._error, self._log = True, None, []
            self._started_at, self._finished_at = dt.datetime.now(dt.UTC), None
            self._phase, self._progress, self._cancelled = "starting", None, False
            self._first_step = None
            self._cancel.clear()
            # A daemon: stopping the server cancels the round and waits a few seconds at
            # most; nothing is registered then, and the next round resumes its run folder.
            self._thread = threading.Thread(target=self._work, args=(cfg,), name="round",
                                            daemon=True)
            self._thread.start()
        return self.state()

    def cancel(self) -> RunnerState:
        """Ask the running round to stop at its next step or phase; raises NoRound when
        none runs. Returns at once (the phase reads "cancelling" until it has stopped)."""
        with self._lock:
            if not self._running:
                raise NoRound("no round is running")
            self._cancel.set()
            self._phase = "cancelling"
        log.warning("round: cancel requested")
        return self.state()

    def _check_cancel(self) -> None:
        """Called with the lock held, from the round's thread."""
        if self._cancel.is_set():
            p = self._progress
            raise RoundCancelled(f"cancelled after training step {p.step}" if p else
                                 "cancelled before training")

    def _on_phase(self, phase: str) -> None:
        with self._lock:
            self._check_cancel()
            self._phase = phase

    def _on_step(self, step: int, logs: dict[str, float], steps: int) -> None:
        now = time.monotonic()
        with self._lock:
            if self._first_step is None:  # this run's first step began `seconds` ago
                self._first_step = (step - 1, now - logs["seconds"])
            before, t0 = self._first_step
            rate = (step - before) / max(now - t0, 1e-9)
            self._progress = TrainProgress(
                step=step, steps=steps, loss=_finite(logs["loss"]),
                iou=_finite(logs["iou_first"]), steps_per_s=rate,
                eta_s=max(steps - step, 0) / rate)
            self._check_cancel()

    def _say(self, line: str) -> None:
        log.warning("%s", line)
        with self._lock:
            self._log = [*self._log, line][-MAX_LOG_LINES:]

    def _work(self, cfg: RoundConfig) -> None:
        outcome, error, cancelled = None, None, False
        try:
            r = self.run(self.project, cfg, progress=False, log=self._say,
                         on_phase=self._on_phase,
                         on_step=lambda step, logs: self._on_step(step, logs,
                                                                  cfg.training.steps))
            outcome = RoundOutcome(version_id=r.version_id, round=r.round,
                                   promoted=r.promoted, note=r.note)
            if r.promoted:
                try:
                    self.on_promoted()
                except Exception as exc:  # noqa: BLE001 - the round itself succeeded
                    log.exception("round %s: could not switch to version %s", r.round,
                                  r.version_id)
                    error = f"promoted, but the server could not switch to it: {exc}"
        except RoundCancelled as exc:
            cancelled = True
            self._say(f"round {exc}: nothing registered; the next round resumes where "
                      f"this one stopped")
        except RoundError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed round must not kill the server
            log.exception("the round failed")
            error = f"the round failed: {type(exc).__name__}: {exc}"
        with self._lock:
            self._running, self._phase, self._cancelled = False, None, cancelled
            self._finished_at = dt.datetime.now(dt.UTC)
            self._error = error
            if outcome is not None:
                self._last = outcome

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the running round; True when none runs any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.state().running
