"""`maskengine` commands that measure a project's data and models: stats (report with
plots), drift (new images unlike the trained ones), evalset (named, frozen evaluation
sets) and prompts (the paper's prompt comparison).

Registered on the Typer app of `cli.py` (which imports this module at its end); heavy
modules are imported inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .cli import app, config_options


def _open(project: str):  # noqa: ANN202
    # cli_data's: imported when called, as `python -m maskengine.cli` loads cli.py twice.
    from .cli_data import _open as open_project

    return open_project(project)


@app.command()
def stats(
    project: str = typer.Argument(..., help="a project folder"),
    out: str = typer.Option("", "--out", help="report folder (default PROJECT/quality/stats)"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="draw the PNG plots "
                               "(needs matplotlib: the 'report' extra)"),
    centre_bins: int = typer.Option(10, "--centre-bins", help="heat map cells per side"),
    effort_bins: int = typer.Option(20, "--effort-bins",
                                    help="points of the seconds/clicks-per-mask curve"),
) -> None:
    """Write an HTML report with PNG plots of the accepted masks: masks per image, sizes
    (COCO classes), centres (heat map), per source, per round, per annotator, and seconds
    and clicks per mask over time; every figure also in stats.json."""
    from .quality.stats import collect_stats
    from .quality.stats_report import MissingPlotLibrary, write_report

    proj = _open(project)
    try:
        figures = collect_stats(proj, centre_bins=centre_bins, effort_bins=effort_bins)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        proj.close()
    folder = Path(out) if out else proj.root / "quality" / "stats"
    try:
        write_report(figures, folder, plots=plots)
    except MissingPlotLibrary as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    d = figures.to_dict()
    typer.echo(f"{d['masks']['total']} masks on {d['images']['with_masks']} of "
               f"{d['images']['total']} images; report: {folder / 'index.html'}")


def _drift_config():  # its own light module: the engine is not loaded for other commands
    from .quality.check_config import DriftConfig

    return DriftConfig


@app.command()
@config_options(_drift_config())
def drift(
    project: str = typer.Argument(..., help="a project folder"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    top: int = typer.Option(20, "--top", help="images shown in the table"),
    config: Any = None,
) -> None:
    """Rank the images without masks by how unlike the annotated train images they are
    (the served model's mean-pooled embeddings, k nearest neighbours, calibrated on the
    train images themselves): annotate the flagged ones first. The report is kept in
    PROJECT/quality/drift.json."""
    from rich.progress import Progress

    from .atomic import write_atomic
    from .engine.errors import BadImage
    from .quality.drift import DriftError, run_drift

    proj = _open(project)
    try:
        with Progress(transient=True, disable=as_json) as bar:
            task = bar.add_task("image embeddings", total=None)
            report = run_drift(proj, config, progress=lambda done, total: bar.update(
                task, completed=done, total=total))
    except (DriftError, BadImage, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        proj.close()
    payload = report.to_dict()
    write_atomic(proj.root / "quality" / "drift.json", json.dumps(payload, indent=1) + "\n")
    if as_json:
        typer.echo(json.dumps(payload, indent=1))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"annotate first: images unlike the {report.reference_images} "
                  f"annotated train images (top {top})", box=box.SIMPLE_HEAD)
    for col in ("rank", "image", "split", "score", "percentile", "flagged", "path"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for n, it in enumerate(report.items[:top]):
        table.add_row(str(n + 1), str(it.image_id), it.split, f"{it.score:.2f}",
                      f"{it.percentile:.0%}", "yes" if it.flagged else "", it.path)
    console = Console()
    console.print(table)
    console.print(f"{payload['flagged']} of {len(report.items)} images without masks score "
                  f"above {report.threshold} (1 = the median train image's distance to the "
                  "others)")


@app.command()
def evalset(
    project: str = typer.Argument(..., help="a project folder"),
    action: str = typer.Argument("list", help="list, create or default"),
    name: str | None = typer.Argument(None, help="the set's name (create, default)"),
    version: str | None = typer.Option(None, "--version", help=(
        "create: freeze this snapshot's validation images (default: the masks now)")),
    default: bool = typer.Option(False, "--default", help=(
        "create: also make it the set that rounds validate on")),
) -> None:
    """Named, frozen evaluation sets: `create NAME` freezes the validation images with
    masks (of a snapshot, or now) as PROJECT/evalsets/NAME.json; `default NAME` makes
    rounds validate on it; `list` shows them. `maskengine eval --project PROJECT
    --evalset NAME` evaluates a model on one."""
    from .quality.evalsets import (
        EvalSetError,
        create_evalset,
        default_evalset,
        list_evalsets,
        load_evalset,
        set_default,
        summary,
    )

    if action not in ("list", "create", "default"):
        raise typer.BadParameter(f"action {action!r}: use list, create or default")
    if action != "list" and not name:
        raise typer.BadParameter(f"{action} needs the set's NAME")
    proj = _open(project)
    try:
        if action == "create":
            d = summary(create_evalset(proj, name, version=version, default=default))
            typer.echo(f"evaluation set {name} ({d['source']}): {d['masks']} masks on "
                       f"{d['images']} validation images" + (", default" if default else ""))
        elif action == "default":
            set_default(proj, name)
            typer.echo(f"rounds of {proj.root} now validate on evaluation set {name}")
        else:
            current = default_evalset(proj)
            names = list_evalsets(proj)
            if not names:
                typer.echo("no evaluation sets yet: `maskengine evalset PROJECT create NAME`")
            for n in names:
                d = summary(load_evalset(proj, n))
                typer.echo(f"{n}{' (default)' if n == current else ''}: {d['masks']} masks on "
                           f"{d['images']} images, from the {d['source']}, {d['created_at']}")
    except EvalSetError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        proj.close()


def _prompt_config():  # beside EvalConfig: numpy is not loaded for other commands
    from .evaluation_job import PromptStudyConfig

    return PromptStudyConfig


@app.command()
@config_options(_prompt_config())
def prompts(config: Any) -> None:
    """The paper's prompt comparison: mIoU of the model's first answer to 1 point, 3 and 5
    points, a box, and a box + point, overall and per COCO size class; --out writes JSON."""
    from .prompt_study import print_study, run_prompt_study

    try:
        result = run_prompt_study(config)
    except (FileNotFoundError, ValueError) as exc:  # CheckpointError, EvalSetError: ValueError
        raise typer.BadParameter(str(exc)) from exc
    print_study(result)
    if config.out:
        typer.echo(f"figures: {config.out}")
