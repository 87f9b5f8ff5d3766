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
from .cli_data import _open


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
