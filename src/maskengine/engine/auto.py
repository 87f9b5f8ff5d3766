"""The fully automatic stage over a folder: every image -> one SA-1B JSON.

Resumable (an image whose JSON is complete is skipped; files are written atomically, so a
kill loses at most the image in flight), and robust (an unreadable, empty or too large image
is listed in `errors.jsonl` with the reason and the run goes on).
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


def _log_error(errors_path: Path, job: Job, reason: str) -> None:
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
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    out = Path(out_dir)
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
    skipped = len(jobs) - len(todo)
    processed = masks = 0
    failed = len(bad_links)
    t0 = time.perf_counter()
    with _progress(progress) as bar:
        task = bar.add_task("auto", total=len(jobs), completed=skipped, masks=0, rate=0.0)
        for job in todo:
            try:
                n = process_job(job, generator, overlay=overlay, max_pixels=max_pixels)
            except ImageError as exc:
                _log_error(errors_path, job, str(exc))
                failed += 1
            except Exception as exc:  # one bad image must not end a long run
                _log_error(errors_path, job, f"generation failed: {type(exc).__name__}: {exc}")
                failed += 1
            else:
                processed += 1
                masks += n
                if on_image is not None:
                    on_image(job, n)
            rate = (processed + failed) / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=1, masks=masks, rate=rate)
    summary = AutoSummary(len(jobs) + len(bad_links), processed, skipped, failed, masks,
                          time.perf_counter() - t0)
    write_atomic(out / SUMMARY, json.dumps(summary.to_dict(), indent=2).encode())
    return summary


def _progress(enabled: bool):  # noqa: ANN202
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
