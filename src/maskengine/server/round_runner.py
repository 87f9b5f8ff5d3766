"""Running a model-in-the-loop round inside the server process, started from the web page.

`RoundRunner` runs `engine.rounds.run_round` in one background thread at a time, keeps what
the page shows while it runs (started at, log lines) and what it ended with (the new version,
or the error), and switches the served model right after a promotion instead of waiting for
the watcher's next poll. Prediction requests keep being answered while the round trains
(they share the CPU with it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..engine.rounds import RoundConfig, RoundError, RoundResult, round_running, run_round
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
class RunnerState:
    """A consistent snapshot of the runner (times are UTC)."""

    running: bool
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    last: RoundOutcome | None
    error: str | None
    log: tuple[str, ...]


class RoundBusy(RuntimeError):
    """A round was asked for while one is running."""


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

    def config(self, overrides: dict | None = None) -> RoundConfig:
        """The template with TrainingConfig field overrides on top (validated by
        TrainingConfig itself: a bad value raises ValueError)."""
        if not overrides:
            return self.template
        training = dataclasses.replace(self.template.training, **overrides)
        return dataclasses.replace(self.template, training=training)

    def state(self) -> RunnerState:
        with self._lock:
            return RunnerState(running=self._running, started_at=self._started_at,
                               finished_at=self._finished_at, last=self._last,
                               error=self._error, log=tuple(self._log))

    def start(self, overrides: dict | None = None) -> RunnerState:
        """Start a round; raises RoundBusy when one is running, ValueError for bad
        overrides. Returns the state right after starting (running is True)."""
        cfg = self.config(overrides)
        with self._lock:
            if self._running:
                raise RoundBusy(f"a round is running since {self._started_at:%H:%M:%S} UTC")
            if round_running(self.project):
                raise RoundBusy("a round of this project is running in another process "
                                "(maskengine train PROJECT)")
            self._running, self._error, self._log = True, None, []
            self._started_at, self._finished_at = dt.datetime.now(dt.UTC), None
            # A daemon: stopping the server does not wait for a long round; the round is
            # not registered then, and the next one resumes from the same run folder.
            self._thread = threading.Thread(target=self._work, args=(cfg,), name="round",
                                            daemon=True)
            self._thread.start()
        return self.state()

    def _say(self, line: str) -> None:
        log.warning("%s", line)
        with self._lock:
            self._log = [*self._log, line][-MAX_LOG_LINES:]

    def _work(self, cfg: RoundConfig) -> None:
        outcome, error = None, None
        try:
            r = self.run(self.project, cfg, progress=False, log=self._say)
            outcome = RoundOutcome(version_id=r.version_id, round=r.round,
                                   promoted=r.promoted, note=r.note)
            if r.promoted:
                try:
                    self.on_promoted()
                except Exception as exc:  # noqa: BLE001 - the round itself succeeded
                    log.exception("round %s: could not switch to version %s", r.round,
                                  r.version_id)
                    error = f"promoted, but the server could not switch to it: {exc}"
        except RoundError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed round must not kill the server
            log.exception("the round failed")
            error = f"the round failed: {type(exc).__name__}: {exc}"
        with self._lock:
            self._running = False
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
