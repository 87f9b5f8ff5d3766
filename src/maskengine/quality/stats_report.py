"""`maskengine stats`: a project's figures as `stats.json`, PNG plots and `index.html`.

The page is self-contained: the plots sit beside it and are linked by relative names, no
external style sheet or script, so the folder can be copied or served as it is. Every
file is written atomically. Plots need matplotlib (the `report` extra); without it
`write_report(..., plots=False)` still writes the JSON and the page's tables.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import numpy as np

from ..atomic import write_atomic
from .stats import DatasetStats

PLOTS = {
    "masks_per_image.png": "Masks per annotated image",
    "mask_sizes.png": "Mask sizes (COCO classes: small < 32², medium < 96² pixels, large)",
    "mask_centres.png": "Mask centres (box centre / image size)",
    "by_source.png": "Masks per source",
    "by_round.png": "Masks per round (model version that served)",
    "by_annotator.png": "Masks per annotator",
    "effort.png": "Seconds and clicks per mask over time",
}


class MissingPlotLibrary(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():  # noqa: ANN202
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingPlotLibrary(
            "maskengine stats draws its plots with matplotlib, which is not installed: "
            "pip install 'maskengine[report]' (or pass --no-plots for the JSON and tables)"
        ) from exc
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, groups: dict[str, dict], xlabel: str) -> None:  # noqa: ANN001
    """Stacked bars of masks per size class for each group."""
    names = list(groups)
    bottom = np.zeros(len(names))
    for cls in ("small", "medium", "large"):
        v = np.array([groups[n]["by_size"][cls] for n in names], dtype=float)
        ax.bar(names, v, bottom=bottom, label=cls)
        bottom += v
    ax.set_xlabel(xlabel)
    ax.set_ylabel("masks")
    if names:
        ax.legend(title="size")
    else:
        ax.text(0.5, 0.5, "no masks", ha="center", va="center", transform=ax.transAxes)


def _draw(plt, name: str, stats: DatasetStats, d: dict):  # noqa: ANN001, ANN202
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if name == "masks_per_image.png":
        hist = {int(k): v for k, v in d["masks_per_image"]["histogram"].items()}
        ax.bar(list(hist), list(hist.values()), width=0.8)
        ax.set_xlabel("masks in the image")
        ax.set_ylabel("images")
    elif name == "mask_sizes.png":
        areas = np.array([r.area for r in stats.rows], dtype=float)
        if len(areas):
            bins = np.geomspace(max(areas.min(), 1), max(areas.max(), 2), 30)
            ax.hist(areas, bins=bins)
            ax.set_xscale("log")
        for edge in (32 ** 2, 96 ** 2):
            ax.axvline(edge, color="k", linestyle="--", linewidth=1)
        ax.set_xlabel("mask area (pixels, log scale); dashed: 32², 96²")
        ax.set_ylabel("masks")
        c = d["masks"]["by_size"]
        ax.set_title(f"small {c['small']}, medium {c['medium']}, large {c['large']}")
    elif name == "mask_centres.png":
        im = ax.imshow(stats.centre_grid(), extent=(0, 1, 1, 0), cmap="viridis",
                       interpolation="nearest")
        fig.colorbar(im, ax=ax, label="masks")
        ax.set_xlabel("x / width")
        ax.set_ylabel("y / height")
    elif name in ("by_source.png", "by_round.png", "by_annotator.png"):
        key = name.removesuffix(".png")
        _bars(ax, d[key], key.removeprefix("by_"))
    elif name == "effort.png":
        bins = d["effort"]
        x = [(b["first"] + b["last"]) / 2 for b in bins]
        ax.plot(x, [b["seconds_per_mask"] for b in bins], "o-", label="seconds / mask")
        ax.set_xlabel("masks made (in creation order)")
        ax.set_ylabel("seconds per mask")
        ax2 = ax.twinx()
        ax2.plot(x, [b["clicks_per_mask"] for b in bins], "s--", color="C1",
                 label="clicks / mask")
        ax2.set_ylabel("clicks per mask")
        if not bins:
            ax.text(0.5, 0.5, "no interactions recorded", ha="center", va="center",
                    transform=ax.transAxes)
        fig.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _table(groups: dict[str, dict], label: str) -> str:
    head = (f"<tr><th>{html.escape(label)}</th><th>masks</th><th>images</th><th>small</th>"
            "<th>medium</th><th>large</th><th>s / mask</th><th>clicks / mask</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{g['masks']}</td><td>{g['images']}</td>"
        + "".join(f"<td>{g['by_size'][c]}</td>" for c in ("small", "medium", "large"))
        + f"<td>{_fmt(g['seconds_per_mask'])}</td><td>{_fmt(g['clicks_per_mask'])}</td></tr>"
        for k, g in groups.items())
    return f"<table>{head}{rows}</table>"


def _page(d: dict, plots: list[str]) -> str:
    im, m, mpi = d["images"], d["masks"], d["masks_per_image"]
    key = [("images", im["total"]),
           ("images by split", ", ".join(f"{k} {v}" for k, v in im["by_split"].items())),
           ("annotated images (done or with masks)", im["annotated"]),
           ("accepted masks", m["total"]),
           ("masks per annotated image (mean / median / max)",
            f"{_fmt(mpi['mean'])} / {_fmt(mpi['median'])} / {_fmt(mpi['max'])}"),
           ("small / medium / large", "{small} / {medium} / {large}".format(**m["by_size"])),
           ("seconds per mask", _fmt(m["seconds_per_mask"])),
           ("clicks per mask", _fmt(m["clicks_per_mask"]))]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in key)
    figs = "".join(f'<figure><img src="{p}" alt="{html.escape(PLOTS[p])}">'
                   f"<figcaption>{html.escape(PLOTS[p])}</figcaption></figure>" for p in plots)
    tables = "".join(f"<h2>Per {label}</h2>{_table(d[key], label)}" for key, label in
                     (("by_source", "source"), ("by_round", "round"),
                      ("by_annotator", "annotator"), ("by_day", "day")))
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "figure{display:inline-block;margin:0 1em 1em 0}")
    title = f"maskengine statistics of {html.escape(d['project'])}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
            f"<style>{style}</style></head><body><h1>{title}</h1><table>{rows}</table>"
            f"{figs}{tables}<p>All figures: <a href='stats.json'>stats.json</a></p>"
            "</body></html>\n")


def write_report(stats: DatasetStats, out: str | Path, *, plots: bool = True) -> list[Path]:
    """Write stats.json, the PNG plots (when `plots`) and index.html under `out`; returns
    the files written."""
    out = Path(out)
    d = stats.to_dict()
    written = []
    names: list[str] = []
    if plots:
        plt = _pyplot()
        for name in PLOTS:
            write_atomic(out / name, _draw(plt, name, stats, d))
            written.append(out / name)
            names.append(name)
    write_atomic(out / "stats.json", json.dumps(d, indent=1) + "\n")
    write_atomic(out / "index.html", _page(d, names))
    return [*written, out / "stats.json", out / "index.html"]
