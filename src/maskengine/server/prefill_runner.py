"""Pre-filling (stage 2) inside the server process, started by an admin from the page.

`PrefillRunner` runs `engine.prefill.prefill_project` in one background thread at a time
with the served model (the segmenter serving when it starts, so its embedding cache is
shared with the page's requests). When the served model version has no detector yet, it
trains one first. The page polls the runner's state: images done of total, the summary or
the error of the last run.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..detection.config import DetectorConfig
from ..engine.prefill_config import PrefillConfig
from ..engine.segmenter import Segmenter
from ..engine.store import Project

log = logging.getLogger("maskengine.server")


class PrefillBusy(RuntimeError):
    """A pre-fill was asked for while one is running."""


@dataclass(frozen=True)
class PrefillRunnerState:
    running: bool
    phase: str | None  # "detector" (training one first), "prefilling", None when idle
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    done: int
    total: int
    last: dict | None  # PrefillSummary.to_dict() of the run that finished last
    error: str | None


class PrefillRunner:
    """One pre-fill at a time in a background thread. `segmenter()` gives the served model
    when a run starts; `template` and `detector_template` are the settings runs use."""

    def __init__(self, project: Project, segmenter: Callable[[], Segmenter],
                 template: PrefillConfig | None = None,
                 detector_template: DetectorConfig | None = None) -> None:
        self.project = project
        self.segmenter = segmenter
        self.template = template or PrefillConfig()
        self.detector_template = detector_template or DetectorConfig()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state = PrefillRunnerState(False, None, None, None, 0, 0, None, None)

    def state(self) -> PrefillRunnerState:
        with self._lock:
            return self._state

    def _set(self, **changes: object) -> None:
        with self._lock:
            self._state = PrefillRunnerState(**{**self._state.__dict__, **changes})

    def start(self, *, user: str, images: list[int] | None = None) -> PrefillRunnerState:
        """Start pre-filling (the images given, or every image not done); raises
        PrefillBusy when a run is under way."""
        with self._lock:
            if self._state.running:
                raise PrefillBusy(f"a pre-fill is running since "
                                  f"{self._state.started_at:%H:%M:%S} UTC")
            self._state = PrefillRunnerState(True, "starting", dt.datetime.now(dt.UTC), None,
                                             0, 0, self._state.last, None)
            self._thread = threading.Thread(target=self._work, args=(user, images),
                                            name="prefill", daemon=True)
            self._thread.start()
        return self.state()

    def _work(self, user: str, images: list[int] | None) -> None:
        from ..engine.detectors import DetectorError, current_detector, train_detector
        from ..engine.prefill import prefill_project

        seg = self.segmenter()
        last, error = None, None
        try:
            with self.project.session() as s:
                has_detector = current_detector(s, seg.model_version_id) is not None
            if not has_detector:
                self._set(phase="detector")
                train_detector(self.project, self.detector_template, segmenter=seg,
                               log=lambda line: log.warning("%s", line))
            self._set(phase="prefilling")
            summary = prefill_project(self.project, seg, self.template, images=images,
                                      user=user, on_image=lambda d, t: self._set(done=d,
                                                                                total=t))
            last = summary.to_dict()
        except (DetectorError, ValueError) as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed run must not kill the server
            log.exception("the pre-fill failed")
            error = f"the pre-fill failed: {type(exc).__name__}: {exc}"
        self._set(running=False, phase=None, finished_at=dt.datetime.now(dt.UTC),
                  last=last if last is not None else self.state().last, error=error)

    def join(self, timeout: float | None = None) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.state().running
