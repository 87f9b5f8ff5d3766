"""The annotation server: a FastAPI app built by `create_app(project, settings)`.

Nothing happens at import; the lifespan hook opens the project, loads the model, registers
its version and starts the embedding cache. The API lives under /api (OpenAPI at /docs and
/openapi.json); the web page is / and its ES modules /static/*.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..engine.errors import BadImage, Conflict, EngineError, Forbidden, InvalidField, NotFound
from ..engine.segmenter import ModelSpec, Segmenter, model_key
from ..engine.store import Project
from ..engine.versions import promote, register_model_version, served_version
from ..threads import set_process_threads
from .deps import AppState
from .limits import BodyLimit, validation_error
from .prefill_runner import PrefillRunner
from .round_runner import NoRound, RoundRunner
from .routes import categories, images, masks, prefill, review, rounds, system
from .settings import ServerSettings
from .watcher import ModelWatcher, segmenter_for

STATIC = Path(__file__).resolve().parent / "static"


def load_state(project_dir: str | os.PathLike, settings: ServerSettings) -> AppState:
    """Open the project and the model version that serves predictions: the project's
    promoted version, unless --checkpoint / --model-config name other weights. A project
    without one promotes the model it starts with (round 0)."""
    set_process_threads(settings.threads)
    project = Project.open(project_dir, db_url=settings.db)
    with project.session() as s:
        served = served_version(s)
        served_id = served.id if served is not None else None
    explicit = settings.checkpoint is not None or settings.model_config is not None
    if served_id is not None and not explicit:
        return AppState(project=project, settings=settings,
                        segmenter=segmenter_for(project, settings, served_id))
    spec = ModelSpec(settings.model, settings.model_config, settings.checkpoint)
    model = spec.load(settings.device)
    key, wsha = model_key(model.config, spec.weights_file())
    name = Path(settings.model_config).stem if settings.model_config else settings.model
    with project.session() as s:
        mv = register_model_version(
            s, key=key, name=name, config=model.config.to_dict(),
            checkpoint=spec.weights_file(), checkpoint_sha256=wsha,
        )
        if served_id is None:
            promote(s, mv, note="starting model")
        mv_id, mv_round = mv.id, mv.round
    seg = Segmenter(model, mv_id, project.cache_dir / "embeddings",
                    memory_items=settings.memory_cache, name=name, round=mv_round,
                    focus=settings.focus)
    return AppState(project=project, settings=settings, segmenter=seg)


def _error(status_code: int, exc: EngineError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status_code)


def create_app(project_dir: str | os.PathLike, settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = load_state(project_dir, settings)
        app.state.app_state = state
        app.state.watcher = watcher = ModelWatcher(state, settings.model_poll)
        app.state.rounds = runner = RoundRunner(state.project, on_promoted=watcher.check)
        app.state.prefill = prefiller = PrefillRunner(state.project, lambda: state.segmenter)
        watcher.start()
        try:
            yield
        finally:
            # A running round is cancelled: it stops at its next step (a step slower than
            # the 5 s wait is left behind); either way the next round resumes its run folder.
            with suppress(NoRound):
                runner.cancel()
            runner.join(timeout=5)
            prefiller.join(timeout=5)  # stops after the image in flight at most
            watcher.stop()
            state.close()

    app = FastAPI(
        title="maskengine annotation server",
        summary="Assisted-manual annotation: click, the model proposes, correct, accept.",
        version="0.1.0",
        lifespan=lifespan,
    )
    for router in (system.router, images.router, masks.router, rounds.router,
                   categories.router, review.router, prefill.router):
        app.include_router(router, prefix="/api")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, validation_error)

    @app.exception_handler(NotFound)
    async def _not_found(_req: Request, exc: NotFound) -> JSONResponse:
        return _error(404, exc)

    @app.exception_handler(Conflict)
    async def _conflict(_req: Request, exc: Conflict) -> JSONResponse:
        return _error(409, exc)

    @app.exception_handler(Forbidden)
    async def _forbidden(_req: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, exc)

    @app.exception_handler(BadImage)
    async def _bad_image(_req: Request, exc: BadImage) -> JSONResponse:
        return _error(422, exc)

    @app.exception_handler(InvalidField)
    async def _invalid(_req: Request, exc: InvalidField) -> JSONResponse:
        # The same shape as FastAPI's own validation errors, so clients read one format.
        detail = [{"loc": list(exc.field), "msg": exc.message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        # The page holds no project data; it asks for a token before calling the API.
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
