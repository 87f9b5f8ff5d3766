"""The `maskengine` command: one subcommand per job.

Options that configure a job come from the fields of its frozen config dataclass
(`config_options`), so no option list is typed twice.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import typer

app = typer.Typer(
    name="maskengine",
    help="An open data engine for promptable (segment anything) image segmentation.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """An open data engine for promptable (segment anything) image segmentation."""


def _option_type(tp: Any) -> Any:
    """The annotation Typer should see for a dataclass field type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return typing.Optional[_option_type(args[0])] if len(args) == 1 else str  # noqa: UP045
    if origin is typing.Literal:
        return str
    return tp


def config_options(config_cls: type, param: str = "config") -> Callable:
    """Decorator: replace the parameter `param` (annotated with a frozen dataclass) of a
    Typer command by one `--option` per dataclass field; the command receives the built
    dataclass. Field help comes from `field(metadata={"help": ...})`."""
    hints = typing.get_type_hints(config_cls)

    def deco(func: Callable) -> Callable:
        sig = inspect.signature(func)
        fields = [f for f in dataclasses.fields(config_cls) if f.init]
        names = {f.name for f in fields}

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            values = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
            try:
                cfg = config_cls(**values)
            except (TypeError, ValueError) as exc:
                raise typer.BadParameter(str(exc)) from exc
            return func(**{param: cfg}, **kwargs)

        params = []
        for p in sig.parameters.values():
            if p.name != param:
                params.append(p)
                continue
            for f in fields:
                default = f.default if f.default is not dataclasses.MISSING else None
                flag = "--" + f.name.replace("_", "-")
                if _option_type(hints[f.name]) in (bool, typing.Optional[bool]):  # noqa: UP045
                    flag += "/--no-" + flag[2:]  # both ways: a default of None means "auto"
                opt = typer.Option(default, flag, help=f.metadata.get("help", ""))
                params.append(inspect.Parameter(
                    f.name, inspect.Parameter.KEYWORD_ONLY, default=opt,
                    annotation=_option_type(hints[f.name]),
                ))
        # Typer reads the signature; required positionals must stay first.
        params.sort(key=lambda p: p.kind)
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return deco


@app.command()
def info() -> None:
    """Print the registered model sizes and whether their weights are bundled."""
    from rich.console import Console
    from rich.table import Table

    from .modeling.registry import MODEL_CONFIGS, bundled_weights_path

    table = Table(title="maskengine models")
    for col in ("name", "encoder", "image size", "embedding", "widths", "blocks",
                "bundled weights"):
        table.add_column(col)
    for name, cfg in MODEL_CONFIGS.items():
        tv = cfg.tiny_vit
        kind, widths, blocks = ("ViT", str(cfg.encoder_embed_dim), str(cfg.encoder_depth))
        if tv is not None:
            kind = "TinyViT"
            widths = "/".join(map(str, tv.embed_dims))
            blocks = "/".join(map(str, tv.depths))
        grid = f"{cfg.embed_size}x{cfg.embed_size}"
        table.add_row(name, kind, str(cfg.image_size), grid, widths, blocks,
                      "yes" if bundled_weights_path(name) else "no")
    Console().print(table)


# -- project store and annotation server (maskengine.engine, maskengine.server) ------------
@app.command()
def init(
    project: str = typer.Argument(..., help="project folder to create"),
    images: str = typer.Option(..., "--images", help="folder of images to annotate"),
    db: str = typer.Option("", "--db", help="SQLAlchemy URL; default sqlite file in PROJECT"),
    val_fraction: float = typer.Option(0.1, help="share of images in the val split"),
    classes: str = typer.Option("", "--classes",
                                help="mask classes, comma-separated (default: class-agnostic)"),
) -> None:
    """Create an annotation project (database, images, an admin user and token)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .engine.errors import EngineError
    from .engine.store import AddResult, ProjectError, init_project

    names = [c for c in classes.split(",") if c.strip()] if classes else None
    res = AddResult()
    try:
        proj, token = init_project(project, images, db_url=db, val_fraction=val_fraction,
                                   classes=names, result=res)
    except (ProjectError, ValueError, EngineError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    except SQLAlchemyError as exc:  # nothing is left behind: the command can be rerun
        typer.echo(f"error: cannot create the project's database: {exc}", err=True)
        raise typer.Exit(1) from exc
    with proj.session() as s:
        from .engine.services import count_images

        n = count_images(s)
    typer.echo(f"project {proj.root}: {n} images; admin token {token} (saved in admin_token)")
    _report_unreadable(res)


def _report_unreadable(res: Any) -> None:
    if res.unreadable:
        typer.echo(f"{len(res.unreadable)} entries skipped:", err=True)
    for path in res.unreadable:
        typer.echo(f"  unreadable: {path} ({res.reasons.get(path, 'unknown reason')})", err=True)


@app.command("add-images")
def add_images(
    project: str = typer.Argument(..., help="project folder"),
    folder: str = typer.Argument(..., help="folder of images to add (recursively)"),
) -> None:
    """Register more images in a project (content duplicates are skipped)."""
    from .engine.store import Project, ProjectError

    try:
        res = Project.open(project).add_image_dir(folder)
    except ProjectError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"added {res.added}, skipped {res.duplicates} duplicates, "
               f"{len(res.unreadable)} unreadable")
    _report_unreadable(res)


@app.command("add-user")
def add_user(
    project: str = typer.Argument(..., help="project folder"),
    name: str = typer.Argument(..., help="user name"),
    role: str = typer.Option("annotator", help="annotator, reviewer or admin"),
) -> None:
    """Create a user and print their API token."""
    from .engine.store import Project, ProjectError

    try:
        token = Project.open(project).add_user(name, role)
    except (ProjectError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(token)


def _export_config():  # deferred import: the engine is not loaded for other commands
    from .engine.export_config import ExportConfig

    return ExportConfig


@app.command()
@config_options(_export_config())
def export(project: str, out: str, config: Any) -> None:
    """Export a project's masks as SA-1B (JSON per image) or COCO (one JSON); with
    --version, a snapshot's masks as they were."""
    from .engine.export import export_project
    from .engine.store import Project, ProjectError
    from .quality.versions import export_version

    try:
        proj = Project.open(project)
        res = (export_version if config.version else export_project)(proj, out, config)
    except (ProjectError, ValueError) as exc:  # VersionError is a ValueError
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"exported {res.masks} masks of {res.images} images to {out}"
               + (f"; {len(res.skipped)} stored rows left out" if res.skipped else ""))
    for reason in res.skipped:
        typer.echo(f"  left out: {reason}", err=True)


def _server_settings():
    from .server.settings import ServerSettings

    return ServerSettings


@app.command()
@config_options(_server_settings(), param="settings")
def serve(project: str, settings: Any) -> None:
    """Run the annotation server (web page and API) for PROJECT."""
    from pathlib import Path

    import uvicorn

    from .server.app import create_app

    token_file = Path(project) / "admin_token"
    if token_file.is_file():
        token = token_file.read_text().strip()
        typer.echo(f"open http://{settings.host}:{settings.port}/#token={token}")
    uvicorn.run(create_app(project, settings), host=settings.host, port=settings.port,
                log_level="warning")


def _training_config():
    from .training.config import TrainingConfig

    return TrainingConfig


def _given_options(ctx: typer.Context) -> set[str]:
    """Names of the options typed on the command line (not left at their default)."""
    sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
    return {name for name, src in sources.items()
            if src is not None and src.name == "COMMANDLINE"}


@app.command()
@config_options(_training_config())
def train(
    ctx: typer.Context,
    config: Any,
    project: str | None = typer.Argument(None, help=(
        "a project folder: run one model-in-the-loop round on its accepted masks")),
    replay: str | None = typer.Option(None, "--replay", help=(
        "with PROJECT: old data replayed with the accepted masks ('synthetic', an SA-1B "
        "folder, a COCO JSON, 'none') against forgetting; default 'auto': the bundled tiny "
        "model's synthetic scenes when it is the served model")),
    replay_fraction: float = typer.Option(0.5, "--replay-fraction", help=(
        "with PROJECT and --replay: share of training samples from the replayed data")),
    force: bool = typer.Option(False, "--force", help=(
        "with PROJECT: promote the round even with no validation masks to compare on")),
    evalset: str | None = typer.Option(None, "--evalset", help=(
        "with PROJECT: validate on this named evaluation set (default: the project's "
        "default set if it has one, else its validation images)")),
    detector: bool | None = typer.Option(None, "--detector/--no-detector", help=(
        "with PROJECT: retrain the stage-2 detector after the round (default: when the "
        "project has one)")),
) -> None:
    """Train or fine-tune a model with simulated interaction; resumes a run folder.

    With PROJECT: fine-tune the project's served model on its accepted masks (round
    defaults: 300 steps, lr 1e-4, replay 'auto'; the options given override them), validate
    it on the validation images, register it, and promote it unless the validation figures
    got worse (without validation masks it is not promoted unless --force).
    A running `maskengine serve` switches to a promoted model by itself."""
    if project is None:
        if replay is not None or force or evalset or detector is not None:
            raise typer.BadParameter("--replay, --force, --evalset and --detector apply to a "
                                     "project round: give PROJECT")
        from .training.trainer import train as run_training

        path = run_training(config)
        typer.echo(f"weights: {path} (plain state_dict; load with create_model(..., checkpoint=))")
        return
    from .engine.rounds import RoundConfig, RoundError, round_training_config, run_round
    from .engine.store import Project, ProjectError

    given = _given_options(ctx)
    try:
        fields = set(config.to_dict())
        training = round_training_config({k: getattr(config, k) for k in given & fields})
        round_cfg = RoundConfig(training=training, force=force, replay_fraction=replay_fraction,
                                evalset=evalset,
                                detector=detector,
                                replay="auto" if replay is None else (
                                    None if replay == "none" else replay))
        proj = Project.open(project)
    except (ValueError, ProjectError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        result = run_round(proj, round_cfg)
    except RoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        proj.close()
    typer.echo(f"version {result.version_id} (round {result.round}): {result.note}")


def _eval_config():
    from .evaluation_job import EvalConfig

    return EvalConfig


@app.command("eval")
@config_options(_eval_config())
def evaluate(config: Any) -> None:
    """Interactive mIoU (1/2/3/5/9 clicks, default and oracle), NoC@85/90, optional AR@k."""
    from .evaluation_job import print_report, run_evaluation

    try:
        result = run_evaluation(config)
    except (FileNotFoundError, ValueError) as exc:  # CheckpointError is a ValueError
        raise typer.BadParameter(str(exc)) from exc
    print_report(result)
    if config.out:
        typer.echo(f"figures: {config.out}")


# Register the commands of these modules on `app`, in this order in the help. Run as
# `python -m maskengine.cli`, this file is `__main__`: the import of `maskengine.cli` at the
# end registers them there.
if __name__ != "__main__":
    from . import cli_auto, cli_data, cli_quality, cli_stage2  # noqa: F401


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # python -m maskengine.cli
    # Run the app of the imported module `maskengine.cli`: the commands of `cli_data`
    # register on that one, not on this `__main__` copy.
    from maskengine.cli import main as _main

    _main()

