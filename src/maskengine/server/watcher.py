"""Switching the served model without a restart.

A round (`maskengine train PROJECT`, in this process or another) promotes a new model
version in the store. `ModelWatcher` polls the store every few seconds; when the promoted
version changes it loads that version, builds its `Segmenter` (a new embedding cache
folder: embeddings of different versions never mix) and swaps it into the app state.
Requests under way finish on the segmenter they started with.
"""

from __future__ import annotations

import logging
import threading

from ..engine.models import ModelVersion
from ..engine.segmenter import Segmenter
from ..engine.store import Project
from ..engine.versions import load_version, served_version
from .deps import AppState
from .settings import ServerSettings

log = logging.getLogger("maskengine.server")


def segmenter_for(project: Project, settings: ServerSettings, version_id: int) -> Segmenter:
    """Load a registered model version as a Segmenter with the server's settings."""
    with project.session() as s:
        mv = s.get(ModelVersion, version_id)
        model = load_version(project, mv, settings.device)
        name, number = mv.name, mv.round
    return Segmenter(model, version_id, project.cache_dir / "embeddings",
                     memory_items=settings.memory_cache, name=name, round=number,
                     focus=settings.focus)


class ModelWatcher:
    """Polls the store for the promoted model version and switches to it."""

    def __init__(self, state: AppState, interval: float) -> None:
        self.state = state
        self.interval = interval
        self._last = self._promoted_id()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="model-watch", daemon=True)

    def _promoted_id(self) -> int | None:
        with self.state.project.session() as s:
            mv = served_version(s)
            return mv.id if mv is not None else None

    def check(self) -> bool:
        """One poll: switch if a version was promoted since the last look. True if switched."""
        with self._lock:
            promoted = self._promoted_id()
            if promoted is None or promoted == self._last:
                return False
            if promoted != self.state.segmenter.model_version_id:
                # Remembered only once loaded: a version that fails to load is tried again.
                self.state.switch_to(
                    segmenter_for(self.state.project, self.state.settings, promoted))
            else:
                self._last = promoted
                return False
            self._last = promoted
            log.warning("now serving model version %s (%s)", promoted, self.state.model_name)
            return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a bad version must not kill the server
                log.exception("could not switch to the promoted model version")

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
