"""`maskengine` commands of stage 2 (semi-automatic): train the project's detector, and
pre-fill the images not labelled yet with confident masks for people to confirm, edit or
reject. Registered on the same Typer app as the commands of `cli.py` (which imports this
module at its end); options come from the config dataclasses."""

from __future__ import annotations

from typing import Any

import typer

from .cli import app, config_options


def _detector_config():  # deferred import: only the dataclass, no torch
    from .detection.config import DetectorConfig

    return DetectorConfig


def _prefill_config():
    from .engine.prefill_config import PrefillConfig

    return PrefillConfig


def _served(project: str, device: str):  # noqa: ANN202
    """The open project and a Segmenter of its served model version."""
    from .engine.detectors import version_segmenter
    from .engine.store import Project, ProjectError
    from .engine.versions import served_version

    try:
        proj = Project.open(project)
    except ProjectError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with proj.session() as s:
        mv = served_version(s)
        mv_id = None if mv is None else mv.id
    if mv_id is None:
        proj.close()
        typer.echo("error: the project has no served model yet: start `maskengine serve` "
                   "once or annotate first", err=True)
        raise typer.Exit(1)
    return proj, version_segmenter(proj, mv_id, device)


@app.command()
@config_options(_detector_config())
def detector(
    project: str = typer.Argument(..., help="a project folder"),
    device: str = typer.Option("cpu", "--device", help="where the model computes embeddings"),
    config: Any = None,
) -> None:
    """Train the stage-2 detector on the accepted masks; print its validation AP50, recall.

    One "object" class, on the boxes of the accepted masks of the train split (rejected
    pre-fills as negatives), on the served model's image embeddings. Once a project has a
    detector, every round (`maskengine train PROJECT`) retrains it."""
    from .engine.detectors import DetectorError, train_detector

    proj, seg = _served(project, device)
    try:
        res = train_detector(proj, config, segmenter=seg, log=typer.echo)
    except DetectorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        seg.close()
        proj.close()
    v = res.metrics.get("val")
    figures = (f"validation AP50 {v['ap50']:.3f}, recall {v['recall50']:.3f}" if v else
               "not measured (no accepted masks on validation images)")
    typer.echo(f"detector {res.detector_id} (model version {res.model_version_id}): {figures}")


def _image_ids(values: list[str]) -> list[int]:
    ids = []
    for v in values:
        for part in v.split(","):
            if part.strip():
                try:
                    ids.append(int(part))
                except ValueError as exc:
                    raise typer.BadParameter(f"--images takes image ids, got {part!r}") from exc
    return ids


@app.command()
@config_options(_prefill_config())
def prefill(
    project: str = typer.Argument(..., help="a project folder"),
    images: list[str] = typer.Option(None, "--images", help=(
        "image ids (repeat or comma-separate); default: every image not marked done")),
    user: str = typer.Option("", "--user", help="log the pre-fill as this user (default: "
                                                "the first admin)"),
    device: str = typer.Option("cpu", "--device", help="where the model runs"),
    config: Any = None,
) -> None:
    """Pre-fill confident masks (stage 2) for people to confirm, edit or reject.

    The detector finds objects on each image not labelled yet, the served model segments
    each box, and the masks that pass the confidence filters are stored as proposals that
    annotators confirm, edit or reject in the page. Idempotent: images the current detector
    pre-filled are skipped, so a killed run resumes."""
    from .engine.detectors import DetectorError
    from .engine.prefill import prefill_project

    ids = _image_ids(images or [])
    proj, seg = _served(project, device)
    try:
        res = prefill_project(proj, seg, config, images=ids or None, user=user or None,
                              progress=True)
    except (DetectorError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        seg.close()
        proj.close()
    typer.echo(f"detector {res.detector_id}: {res.images} images pre-filled ({res.skipped} "
               f"done before), {res.detections} detections, {res.proposed} masks proposed "
               f"in {res.seconds:.1f} s")
