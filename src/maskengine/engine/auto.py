"""The fully automatic stage over a folder: every image -> one SA-1B JSON.

Resumable (an image whose JSON is complete is skipped; files are written atomically, so a
kill loses at most the image in flight), and robust (an unreadable, empty or too large image
is listed in `errors.jsonl` with the reason and the run goes on). `run.json` records the model
and generator settings the folder's masks were made with (for `import-auto`); a resumed run
with others is refused. `annotate` is the per-image work every runner shares (this one, and
the Ray actors of `auto_ray`), so their files are the same.
"""

from __future__ import annotations

import json
import os
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import remove_stale_temps, write_atomic
from ..data.sa1b_write import (
    SA1BAnnotation,
    SA1BFile,
    SA1BImage,
    is_complete_sa1b,
    write_sa1b,
)
from ..image_files import IMAGE_SUFFIXES
from ..masks import decode_rle

DEFAULT_MAX_PIXELS = 50_000_000
ERRORS = "errors.jsonl"
SUMMARY = "summary.json"
RUN = "run.json"  # the model and generator settings the masks of a folder were made with
# Settings that change speed, not masks: a resumed run may change them.
_SPEED_ONLY = ("points_per_batch",)


class ImageError(ValueError):
    """An image that cannot be processed; the message is the reason."""


@dataclass(frozen=True)
class Job:
    """One image: its file, its name relative to the input (posix), its outputs."""

    path: Path
    name: str
    json_path: Path
    overlay_path: Path


@dataclass(frozen=True)
class AutoSummary:
    total: int
    processed: int
    skipped: int
    failed: int
    masks: int
    seconds: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def run_record(model_name: str, model_config: dict, weights: str | None,
               generator_settings: dict) -> dict:
    """What run.json holds: the model (name, config, weights file and its sha256, and the
    key a project registers the version under) and the generator's settings."""
    from ..config import SamConfig
    from .segmenter import model_key  # hashes the weights once per run

    key, wsha = model_key(SamConfig(**model_config), weights)
    return {"model": {"name": model_name, "config": model_config, "key": key,
                      "checkpoint": weights, "checkpoint_sha256": wsha},
            "generator": generator_settings}


def write_run_record(out: Path, record: dict) -> None:
    """Write run.json, or refuse (ValueError) when `out` holds masks made with another model
    or other generator settings: a resumed run must not mix two kinds of masks."""
    path = out / RUN
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if isinstance(old, dict):
            differ = [k for k in sorted(set(record["generator"]) | set(old.get("generator", {})))
                      if k not in _SPEED_ONLY
                      and record["generator"].get(k) != old.get("generator", {}).get(k)]
            if old.get("model", {}).get("key") != record["model"]["key"]:
                differ.insert(0, "model")
            if differ:
                raise ValueError(f"{out} holds masks made with other settings ({', '.join(differ)} "
                                 f"differ; see {path}): use another --out folder")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, indent=1).encode())


def find_jobs(inputs: Sequence[str | os.PathLike], out_dir: Path,
              bad_links: list[tuple[Path, str]] | None = None) -> list[Job]:
    """Image files among `inputs` (files, or folders searched recursively), sorted, without
    duplicates. Outputs mirror the folder structure; a stem shared by two images of one
    folder (a.jpg, a.png) keeps the suffix in the output name. Links to folders are not
    followed; a link named like an image that leads nowhere (dangling, or a loop) goes to
    `bad_links` as (path, reason)."""
    found: dict[Path, str] = {}
    roots = [Path(p) for p in inputs]
    for root in roots:
        if root.is_dir():
            prefix = root.resolve().name + "/" if len(roots) > 1 else ""
            for p in sorted(root.rglob("*")):
                if p.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    target = p.resolve(strict=True)
                except (OSError, RuntimeError) as exc:  # RuntimeError: a loop (Python<3.13)
                    if bad_links is not None:
                        why = "link loop" if "loop" in str(exc).lower() else "dangling link"
                        bad_links.append((p, f"{why}: {exc}"))
                    continue
                if target.is_file():
                    found.setdefault(target, prefix + p.relative_to(root).as_posix())
        elif root.is_file():
            found.setdefault(root.resolve(), root.name)
        else:
            raise FileNotFoundError(f"{root} is neither an image file nor a folder")
    stems: dict[str, int] = {}
    for name in found.values():
        key = name.rsplit(".", 1)[0]
        stems[key] = stems.get(key, 0) + 1
    jobs = []
    for path, name in sorted(found.items(), key=lambda kv: kv[1]):
        stem = name.rsplit(".", 1)[0]
        base = stem if stems[stem] == 1 else name
        jobs.append(Job(path, name, out_dir / f"{base}.json", out_dir / f"{base}.overlay.png"))
    return jobs


def load_image(path: Path, max_pixels: int) -> np.ndarray:
    """H x W x 3 uint8 RGB, or ImageError saying why not (unreadable, empty, too large)."""
    try:
        if path.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w == 0 or h == 0:
                    raise ImageError(f"empty image ({w}x{h} pixels)")
                if w * h > max_pixels:
                    raise ImageError(f"too large: {w}x{h} = {w * h} pixels, limit {max_pixels} "
                                     "(--max-pixels)")
                im.load()
                if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                    # 16-bit / float scans: stretch to 8 bits for the model.
                    a = np.asarray(im, dtype=np.float32)
                    lo, hi = float(a.min()), float(a.max())
                    a = (a - lo) * (255.0 / (hi - lo) if hi > lo else 0.0)
                    return np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)
                return np.asarray(im.convert("RGB"))
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too large for Pillow: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"unreadable: {type(exc).__name__}: {exc}") from exc


def image_id(name: str) -> int:
    """A stable id from the image's relative name (the same on every run and subset)."""
    return zlib.crc32(name.encode())


def overlay_image(image: np.ndarray, segmentations: Sequence[dict]) -> np.ndarray:
    """Masks painted over the image for a person to look at: H x W x 3 uint8. Largest masks
    first, so small ones stay visible; colours fixed per mask index."""
    out = image.astype(np.float32)
    masks = [decode_rle(s) for s in segmentations]
    rng = np.random.default_rng(0)
    colours = rng.integers(40, 256, size=(len(masks), 3)).astype(np.float32)
    for i in sorted(range(len(masks)), key=lambda i: -int(masks[i].sum())):
        m = masks[i]
        out[m] = 0.45 * out[m] + 0.55 * colours[i]
    return out.clip(0, 255).astype(np.uint8)


def log_error(errors_path: Path, job: Job, reason: str) -> None:
    _log_line(errors_path, job.path, job.name, reason)


def _log_line(errors_path: Path, path: Path, name: str, reason: str) -> None:
    line = json.dumps({"image": str(path), "name": name, "reason": reason,
                       "time": datetime.now(UTC).isoformat(timespec="seconds")})
    with open(errors_path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def process_job(job: Job, generator, *, overlay: bool, max_pixels: int) -> int:  # noqa: ANN001
    """Generate, write the SA-1B JSON (and overlay) of one image; the number of masks."""
    image = load_image(job.path, max_pixels)
    records = generator.generate(image)
    iid = image_id(job.name)
    anns = [SA1BAnnotation.from_record(r, iid * 100_000 + k) for k, r in enumerate(records)]
    h, w = image.shape[:2]
    file = SA1BFile(SA1BImage(iid, w, h, Path(job.name).name), anns)
    if overlay:  # first, so that a complete JSON means a complete image
        buf = _png_bytes(overlay_image(image, [a.segmentation for a in anns]))
        write_atomic(job.overlay_path, buf)
    write_sa1b(job.json_path, file)
    return len(anns)


def _png_bytes(image: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def is_done(job: Job, overlay: bool) -> bool:
    return is_complete_sa1b(job.json_path) and (not overlay or job.overlay_path.is_file())


@dataclass(frozen=True)
class Outcome:
    """What became of one image: its number of masks, or why it failed."""

    masks: int | None
    error: str | None = None


def annotate(job: Job, generator, *, overlay: bool, max_pixels: int) -> Outcome:  # noqa: ANN001
    """Process one image as every runner does (local, Ray actor): never raises for a bad
    image or a failed generation; the reason goes into the outcome."""
    try:
        return Outcome(process_job(job, generator, overlay=overlay, max_pixels=max_pixels))
    except ImageError as exc:
        return Outcome(None, str(exc))
    except Exception as exc:  # one bad image must not end a long run
        return Outcome(None, f"generation failed: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class Plan:
    """A run's work: all jobs, those still to do, and where errors are listed."""

    jobs: list[Job]
    todo: list[Job]
    errors_path: Path
    bad_links: int


def plan_run(inputs: Sequence[str | os.PathLike], out: Path, *, overlay: bool,
             max_pixels: int) -> Plan:
    """List the images, clear what a killed run left, start errors.jsonl afresh (with the
    links that lead nowhere) and keep the jobs whose output is not complete."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    out.mkdir(parents=True, exist_ok=True)
    bad_links: list[tuple[Path, str]] = []
    jobs = find_jobs(inputs, out, bad_links)
    for folder in {out, *(j.json_path.parent for j in jobs)}:
        remove_stale_temps(folder)  # what a killed run was writing
    errors_path = out / ERRORS
    write_atomic(errors_path, b"")
    for path, reason in bad_links:  # inputs too, though no image can be read from them
        _log_line(errors_path, path, path.name, reason)
    todo = [j for j in jobs if not is_done(j, overlay)]
    return Plan(jobs, todo, errors_path, len(bad_links))


def finish_run(out: Path, plan: Plan, processed: int, failed: int, masks: int,
               seconds: float) -> AutoSummary:
    """The summary of a run, also written to summary.json."""
    summary = AutoSummary(len(plan.jobs) + plan.bad_links, processed,
                          len(plan.jobs) - len(plan.todo), failed + plan.bad_links, masks,
                          seconds)
    write_atomic(out / SUMMARY, json.dumps(summary.to_dict(), indent=2).encode())
    return summary


def run_auto(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    generator,  # noqa: ANN001 - a MaskGenerator (anything with generate(image) -> records)
    *,
    overlay: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = True,
    on_image: Callable[[Job, int], None] | None = None,
) -> AutoSummary:
    """Annotate every image under `inputs` into `out_dir` (one SA-1B JSON each).

    Images whose output is already complete are skipped; failures (and links named like
    images that lead nowhere) go to errors.jsonl (rewritten each run: a rerun retries them)
    and are counted in the summary, which is also written to summary.json.
    """
    out = Path(out_dir)
    plan = plan_run(inputs, out, overlay=overlay, max_pixels=max_pixels)
    processed = masks = failed = 0
    t0 = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task("auto", total=len(plan.jobs), completed=len(plan.jobs) -
                            len(plan.todo), masks=0, rate=0.0)
        for job in plan.todo:
            res = annotate(job, generator, overlay=overlay, max_pixels=max_pixels)
            if res.error is not None:
                log_error(plan.errors_path, job, res.error)
                failed += 1
            else:
                processed += 1
                masks += res.masks
                if on_image is not None:
                    on_image(job, res.masks)
            rate = (processed + failed) / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=1, masks=masks, rate=rate)
    return finish_run(out, plan, processed, failed, masks, time.perf_counter() - t0)


def progress_bar(enabled: bool):  # noqa: ANN202
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TextColumn("{task.fields[rate]:.2f} img/s"),
        TextColumn("{task.fields[masks]} masks"), TimeElapsedColumn(), TimeRemainingColumn(),
        disable=not enabled,
    )
