"""`maskengine` commands about a project's data: classes, status (per-round figures), and
data maintenance: check, snapshot, diff.

Registered on the same Typer app as the commands of `cli.py` (which imports this module
at its end); options of a job come from its config dataclass as there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .cli import app, config_options


def _open(project: str):  # noqa: ANN202
    from .engine.store import Project, ProjectError

    try:
        return Project.open(project)
    except ProjectError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _check_config():  # deferred import: the engine is not loaded for other commands
    from .quality.check_config import CheckConfig

    return CheckConfig


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def print_check_report(report, root: Path, top: int) -> None:  # noqa: ANN001
    """The readable form of a CheckReport: summary, the `top` likeliest wrong masks,
    duplicates and overlaps, near-duplicate images, done images without masks."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    d = report.to_dict()["summary"]
    console.print(f"[bold]checks of {root}[/]: {d['masks']} masks, {d['flagged']} flagged; "
                  f"{d['duplicates']} duplicate and {d['overlaps']} overlapping pairs; "
                  f"{d['near_duplicate_images']} near-duplicate image pairs "
                  f"({d['across_split']} across train/val); "
                  f"{d['done_without_masks']} images done without masks")
    if report.model_version_id is None:
        console.print("no model re-asked (no served model, or --no-model)")
    table = Table(title=f"likeliest wrong masks (top {top})", box=box.SIMPLE_HEAD)
    for col in ("mask", "image", "score", "IoU\nbox", "IoU\nclicks", "edge\nweak",
                "clicks\nbad", "area", "flags"):
        table.add_column(col, justify="left" if col == "flags" else "right")
    for m in report.masks[:top]:
        table.add_row(str(m.mask_id), str(m.image_id), f"{m.score:.2f}", _fmt(m.model_iou_box),
                      _fmt(m.model_iou_clicks), _fmt(m.edge_weakness),
                      f"{m.click_errors}/{m.clicks}", str(m.area), ", ".join(m.flags))
    console.print(table)
    if report.pairs:
        pt = Table(title="duplicate and overlapping masks", box=box.SIMPLE_HEAD)
        for col in ("image", "mask a", "mask b", "IoU", "kind"):
            pt.add_column(col)
        for p in report.pairs[:top]:
            pt.add_row(str(p.image_id), str(p.a), str(p.b), f"{p.iou:.2f}", p.kind)
        console.print(pt)
    if report.images:
        it = Table(title="near-duplicate images", box=box.SIMPLE_HEAD)
        for col in ("image a", "image b", "splits", "distance", "method"):
            it.add_column(col)
        for p in report.images[:top]:
            splits = f"{p.split_a}/{p.split_b}" + (" [red]crosses split[/]"
                                                   if p.crosses_split else "")
            it.add_row(str(p.a), str(p.b), splits, _fmt(p.distance, ".3g"), p.method)
        console.print(it)
    if report.done_without_masks:
        ids = ", ".join(map(str, report.done_without_masks[:50]))
        console.print(f"images marked done with no masks: {ids}")


@app.command()
@config_options(_check_config())
def check(
    project: str = typer.Argument(..., help="a project folder"),
    out: str = typer.Option("", "--out", help="also write the JSON report to this file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
    top: int = typer.Option(20, "--top", help="masks and pairs shown in the tables"),
    config: Any = None,
) -> None:
    """Rank the accepted masks by how likely they are wrong (the served model re-asked
    with each mask's box and clicks, outline against image edges, contradicted clicks)
    and list duplicate masks, near-duplicate images and suspicious shapes. The report is
    kept in PROJECT/quality/check.json: the page's review queue shows suspect masks first."""
    from rich.progress import Progress

    from .engine.rounds import RoundError
    from .quality.checks import run_checks

    proj = _open(project)
    try:
        with Progress(transient=True, disable=as_json) as bar:
            task = bar.add_task("checking images", total=None)
            report = run_checks(proj, config, progress=lambda done, total: bar.update(
                task, completed=done, total=total))
    except (RoundError, FileNotFoundError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        proj.close()
    from .atomic import write_atomic
    from .quality.queue import check_file

    payload = report.to_dict()
    blob = json.dumps(payload, indent=1).encode()
    write_atomic(check_file(proj), blob)  # the page's review queue reads the last check
    if out:
        write_atomic(Path(out), blob)
    if as_json:
        typer.echo(json.dumps(payload, indent=1))
    else:
        print_check_report(report, proj.root, top)


# -- dataset versions (maskengine.quality.versions) -------------------------------------------
@app.command()
def snapshot(
    project: str = typer.Argument(..., help="a project folder"),
    name: str = typer.Argument(..., help="version name (letters, digits, . _ -)"),
) -> None:
    """Freeze the current accepted masks as a named dataset version (PROJECT/versions/
    NAME.json: image hashes, mask ids, content hashes and the masks themselves)."""
    from .quality.versions import VersionError, load_manifest
    from .quality.versions import snapshot as take

    proj = _open(project)
    try:
        file = take(proj, name)
        m = load_manifest(proj, name)
    except VersionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        proj.close()
    n = sum(len(im["masks"]) for im in m["images"])
    typer.echo(f"version {name}: {n} masks of {len(m['images'])} images in {file}")


@app.command()
def diff(
    project: str = typer.Argument(..., help="a project folder"),
    a: str = typer.Argument(..., help="the older version"),
    b: str = typer.Argument("current", help="the newer version ('current': the masks now)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """What changed between two versions: masks added, removed, edited; images added,
    removed, changed."""
    from .quality.versions import VersionError
    from .quality.versions import diff as compare

    proj = _open(project)
    try:
        d = compare(proj, a, b)
    except VersionError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        proj.close()
    if as_json:
        typer.echo(json.dumps(d.to_dict(), indent=1))
        return

    def ids(v: list[int]) -> str:
        return ", ".join(map(str, v[:30])) + (f" ... (+{len(v) - 30})" if len(v) > 30 else "")

    typer.echo(f"{a} -> {b}: {len(d.added)} masks added, {len(d.removed)} removed, "
               f"{len(d.edited)} edited, {d.unchanged} unchanged; images: "
               f"{len(d.images_added)} added, {len(d.images_removed)} removed, "
               f"{len(d.images_changed)} changed")
    for label, v in (("added", d.added), ("removed", d.removed), ("edited", d.edited),
                     ("images added", d.images_added), ("images removed", d.images_removed),
                     ("images changed", d.images_changed)):
        if v:
            typer.echo(f"  {label}: {ids(v)}")


@app.command("classes")
def classes_command(
    project: str = typer.Argument(..., help="project folder"),
    add: list[str] = typer.Argument(None, help="class names to add (none: list them)"),
) -> None:
    """List a project's mask classes, or add classes.

    Keys 1-9 in the page pick the first nine; COCO export writes them as categories."""
    from .engine.categories import add_categories, list_categories
    from .engine.errors import EngineError
    from .engine.store import Project, ProjectError

    try:
        proj = Project.open(project)
        with proj.session() as s:
            if add:
                add_categories(s, add)
            rows = [(c.id, c.name) for c in list_categories(s)]
    except (ProjectError, EngineError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    if not rows:
        typer.echo("no classes: the project is class-agnostic")
    for i, (cid, name) in enumerate(rows):
        key = f"key {i + 1}" if i < 9 else "no key"
        typer.echo(f"{cid:>4}  {name}  ({key})")


@app.command()
def status(
    project: str = typer.Argument(..., help="a project folder"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Per round: masks accepted, seconds and clicks per mask, masks per image, and the
    model's validation mIoU@1 / NoC@90."""
    import json

    from .engine.round_stats import round_stats
    from .engine.store import Project, ProjectError

    try:
        proj = Project.open(project)
    except ProjectError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with proj.session() as s:
        rows = round_stats(s)
    proj.close()
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=1))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def fmt(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    # Fits 80 columns: two-line headers, the version's name and the notes below the table.
    table = Table(title=f"rounds of {proj.root}", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True, show_edge=False)
    for col in ("round", "version", "masks", "clicks\n/mask", "s\n/mask", "masks\n/image",
                "val\nmIoU@1", "val\nNoC@90", "train\ns", "state"):
        table.add_column(col, justify="left" if col == "state" else "right", no_wrap=True)
    for r in rows:
        state = "serving" if r.serving else ("promoted" if r.promoted else "kept")
        table.add_row(str(r.round), str(r.version_id), str(r.masks),
                      fmt(r.clicks_per_mask, ".2f"), fmt(r.seconds_per_mask, ".1f"),
                      fmt(r.masks_per_image, ".1f"), fmt(r.val_miou1, ".3f"),
                      fmt(r.val_noc90, ".2f"), fmt(r.train_seconds, ".0f"), state)
    console = Console()
    if not rows:
        typer.echo(f"{proj.root}: no model version yet; `maskengine serve` registers the "
                   "starting model (round 0) when it starts")
        return
    console.print(table)
    for r in rows:
        line = f"round {r.round}, version {r.version_id} ({r.name})"
        if r.det_ap50 is not None:
            line += f"; detector AP50 {r.det_ap50:.3f}, recall {fmt(r.det_recall, '.3f')}"
        console.print(f"{line}: {r.note}" if r.note else line, soft_wrap=False)
