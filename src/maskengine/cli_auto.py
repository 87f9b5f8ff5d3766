"""`maskengine auto` (stage 3 on one machine or a Ray cluster) and `maskengine import-auto`
(its masks into a project, pending review).

Registered on the same Typer app as the commands of `cli.py` (which imports this module);
the generator's options come from `GeneratorConfig` as there.
"""

from __future__ import annotations

from typing import Any

import typer

from .cli import app, config_options


def _generator_config():  # deferred import: the network is not loaded for --help
    from .config import GeneratorConfig

    return GeneratorConfig


@app.command()
@config_options(_generator_config())
def auto(
    images: list[str] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    out: str = typer.Option(..., "--out", help="Output folder: one SA-1B JSON per image."),
    model: str | None = typer.Option(
        None, "--model", help="vit_b, vit_l, vit_h, tiny, or a SamConfig JSON file; inferred "
        "from the checkpoint when omitted."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="Weights (state_dict)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps..."),
    overlay: bool = typer.Option(False, "--overlay", help="Also write <name>.overlay.png."),
    max_pixels: int = typer.Option(
        50_000_000, "--max-pixels", help="Larger images are listed in errors.jsonl, skipped."),
    threads: int | None = typer.Option(
        None, "--threads", help="CPU threads for torch (with --ray: per worker)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
    ray: bool = typer.Option(False, "--ray", help=(
        "Run as a Ray Data job (a local Ray started for it, or --ray-address); paths must "
        "be reachable from every worker. Needs Ray (the extra named ray).")),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="An existing Ray cluster (HOST:PORT or 'auto'); implies "
        "--ray."),
    workers: int = typer.Option(2, "--workers", help="With --ray: actors, one model each."),
    cpus_per_worker: float = typer.Option(1.0, "--cpus-per-worker", help="With --ray."),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", help="With --ray: GPUs per actor (> 0: the model on cuda)."),
    project: str | None = typer.Option(
        None, "--project", help="Then add the masks to this project (as import-auto does)."),
    config: Any = None,
) -> None:
    """Fully automatic masks for every image under IMAGES, as SA-1B JSON files (COCO RLE,
    whatever --output-mode says); resumes, and lists bad images in errors.jsonl. With --ray
    (or --ray-address) on a Ray cluster, with the same output."""
    import dataclasses
    from pathlib import Path

    from .engine.auto import run_record, write_run_record
    from .modeling import create_model
    from .modeling.registry import bundled_weights_path, resolve_checkpoint

    proj = _open_project(project) if project else None
    try:
        sam = create_model(model, checkpoint, "cpu" if ray or ray_address else device)
        weights = resolve_checkpoint(model, checkpoint) if checkpoint else (
            bundled_weights_path(model) if model else None)
        gen_cfg = dataclasses.replace(config, output_mode="coco_rle")
        name = Path(model).stem if model and Path(model).is_file() else (model or "inferred")
        write_run_record(Path(out), run_record(name, sam.config.to_dict(),
                                               str(weights) if weights else None,
                                               dataclasses.asdict(gen_cfg)))
        if ray or ray_address:
            del sam  # each worker loads its own
            s = _run_ray(images, out, model, checkpoint, device, gen_cfg, overlay=overlay,
                         max_pixels=max_pixels, progress=progress, threads=threads,
                         address=ray_address, workers=workers, cpus=cpus_per_worker,
                         gpus=gpus_per_worker)
        else:
            s = _run_local(images, out, sam, gen_cfg, overlay=overlay, max_pixels=max_pixels,
                           progress=progress, threads=threads)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    rate = (s.processed + s.failed) / s.seconds if s.seconds > 0 else 0.0
    typer.echo(f"{s.total} images: {s.processed} annotated, {s.skipped} already done, "
               f"{s.failed} failed (see {out}/errors.jsonl); {s.masks} masks in "
               f"{s.seconds:.1f} s ({rate:.2f} images/s)")
    if s.processed + s.skipped == 0:
        typer.echo("error: no image was annotated" + (
            f" (all {s.failed} failed; see {out}/errors.jsonl)" if s.failed else
            " (no image files found)"), err=True)
        raise typer.Exit(1)
    if proj is not None:
        _import(proj, out, None)


def _run_local(images, out, sam, gen_cfg, *, overlay, max_pixels, progress,  # noqa: ANN001, ANN202
               threads):
    from .engine.auto import run_auto
    from .generator import MaskGenerator
    from .threads import set_process_threads

    set_process_threads(threads)
    return run_auto(images, out, MaskGenerator(sam, gen_cfg), overlay=overlay,
                    max_pixels=max_pixels, progress=progress)


def _run_ray(images, out, model, checkpoint, device, gen_cfg, *, overlay, max_pixels,  # noqa: ANN001, ANN202
             progress, threads, address, workers, cpus, gpus):
    from .engine.auto_ray import ModelSource, RayConfig, RayJobError, run_auto_ray

    cfg = RayConfig(address=address, workers=workers, cpus_per_worker=cpus,
                    gpus_per_worker=gpus, threads=threads)
    try:
        return run_auto_ray(images, out, ModelSource(model, checkpoint, device), gen_cfg, cfg,
                            overlay=overlay, max_pixels=max_pixels, progress=progress)
    except RayJobError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _open_project(project: str):  # noqa: ANN202
    from .engine.store import Project, ProjectError

    try:
        return Project.open(project)
    except ProjectError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _import(proj: Any, folder: str, dedupe_iou: float | None) -> None:
    from .engine.import_auto import ImportConfig, import_auto

    try:
        cfg = ImportConfig() if dedupe_iou is None else ImportConfig(dedupe_iou=dedupe_iou)
        res = import_auto(proj, folder, cfg)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    finally:
        proj.close()
    typer.echo(f"imported {res.added} automatic masks of {res.images} images from {res.files} "
               f"files ({res.duplicates} duplicates of masks already there left out; model "
               f"version {res.model_version_id}); pending review")
    for reason in res.skipped:
        typer.echo(f"  skipped: {reason}", err=True)
    if res.files and not res.images:
        typer.echo("error: no file matched an image of the project", err=True)
        raise typer.Exit(1)


@app.command("import-auto")
def import_auto_cmd(
    project: str = typer.Argument(..., help="project folder"),
    folder: str = typer.Argument(..., help="output folder of `maskengine auto` (SA-1B JSON)"),
    dedupe_iou: float = typer.Option(
        0.85, "--dedupe-iou", help="a mask whose mask IoU with one the image has is above "
        "this is not added"),
) -> None:
    """Add automatic masks (an SA-1B folder of `maskengine auto`) to a project: source
    automatic, pending review, with predicted IoU, stability, model version and generator
    settings; duplicates of masks already there are left out, so a rerun adds nothing."""
    _import(_open_project(project), folder, dedupe_iou)
