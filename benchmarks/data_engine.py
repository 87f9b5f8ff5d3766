"""Does the model-in-the-loop pay off? Rounds of simulated annotation and retraining on a
domain the starting model never saw.

Start from the bundled tiny model (trained on the "shapes" synthetic family only). The
project holds scenes of the "organic" family (other shapes, textures and sizes). Each
round r = 0..R: the simulated annotator (maskengine.engine.simulate: clicks like the
evaluation protocol, accepts at IoU >= 0.9 or after 20 clicks, a click budget per image)
labels a new batch of images with the served model through the server's own code; then,
for r < R, `run_round` fine-tunes the served model on every mask accepted so far (with
the shapes family replayed as half of the samples, against forgetting), validates it on
the validation images and promotes it unless worse.

Per round: clicks per mask, masks per image, seconds per mask (2 s per click credited plus
the model's own time), the served model's validation 1-point mIoU and NoC@90, and the
training time of the round that follows. Goal: clicks per mask falls by >= 40% from round 0
to round R. Writes results/data_engine.json and results/data_engine.png.

The batches differ in difficulty, so each round's batch is also annotated by the starting
model, in a throwaway copy of the project (`start_clicks_per_mask`): the paired fall
1 - clicks / start_clicks of round R shows what the rounds bought on the same images.
`--baseline-only` runs just that (minutes) into results/<name>_baseline.json.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/data_engine.py   # ~2 h, 2 cores
    .venv/bin/python benchmarks/data_engine.py --rounds 1 --images 2 --steps 2  # smoke run
    .venv/bin/python benchmarks/data_engine.py --baseline-only  # the starting model only
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, bundled_sha256, environment, parse_config, write_results  # noqa: E402
from maskengine.data import SceneConfig, generate_scene  # noqa: E402
from maskengine.engine.round_stats import round_stats  # noqa: E402
from maskengine.engine.rounds import (  # noqa: E402
    RoundConfig,
    round_training_config,
    run_round,
)
from maskengine.engine.simulate import (  # noqa: E402
    AnnotatorConfig,
    SimulatedAnnotator,
    make_synthetic_project,
)
from maskengine.engine.versions import served_version  # noqa: E402
from maskengine.server.app import load_state  # noqa: E402
from maskengine.server.settings import ServerSettings  # noqa: E402
from maskengine.server.watcher import segmenter_for  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    rounds: int = 4  # retrainings; rounds 0..R annotate
    # Images annotated per round: 15 organic scenes give ~75 accepted masks at round 0 and
    # ~300 by round 4, the scale at which benchmarks/finetune_recipes.py (441 masks) saw
    # the default recipe help; annotating is cheap next to a round's fine-tune.
    images: int = 15
    val_images: int = 8  # the recipe study's 8 validation scenes (same seed stream)
    scene_size: int = 256
    click_budget: int = 80  # clicks per image
    max_clicks: int = 20
    # The round's recipe: 0 / "default" = what `maskengine train PROJECT` does by default
    # (ROUND_TRAINING_DEFAULTS and RoundConfig, chosen by benchmarks/finetune_recipes.py).
    steps: int = 0  # fine-tuning steps per round
    lr: float = 0.0
    replay: str = "default"  # old data replayed in each round ('' for none)
    replay_fraction: float = 0.0
    seed: int = 0
    threads: int = 0
    name: str = "data_engine"  # results/<name>.json and .png
    baseline_only: bool = False  # only the starting model on each round's batch


def parse_args() -> BenchConfig:
    return parse_config(BenchConfig, __doc__.split("\n\n")[0])  # type: ignore[return-value]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = [row["round"] for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    series = [("clicks per mask", "clicks_per_mask"), ("masks per image", "masks_per_image")]
    for ax, (title, key) in zip(axes[:2], series, strict=True):
        ax.plot(r, [row["batch_" + key] for row in rows], "o-", label="served model")
        ax.plot(r, [row["start_" + key] for row in rows], "x:", color="C2",
                label="starting model, same batch")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    axes[2].plot(r, [row["val_miou1"] for row in rows], "o-", label="1-point mIoU")
    ax2 = axes[2].twinx()
    ax2.plot(r, [row["val_noc90"] for row in rows], "s--", color="C1", label="NoC@90")
    axes[2].set_title("validation: mIoU@1 (o), NoC@90 (s)")
    for ax in axes:
        ax.set_xlabel("round")
        ax.set_xticks(r)
        ax.grid(alpha=0.3)
    fig.suptitle("model in the loop: tiny model on an unseen synthetic family")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def batch_figures(results: list) -> dict:
    """Clicks and seconds per saved mask, saved masks per image, of one batch's
    `ImageResult`s (the store pools a version's rounds; this is one batch alone)."""
    saved = [o for x in results for o in x.saved]
    n = max(len(saved), 1)
    return {"masks": len(saved), "clicks_per_mask": sum(o.clicks for o in saved) / n,
            "seconds_per_mask": sum(o.seconds for o in saved) / n,
            "masks_per_image": len(saved) / max(len(results), 1)}


def annotate_batch(annotator: SimulatedAnnotator, sp, cfg: BenchConfig,  # noqa: ANN001
                   r: int) -> list:
    """Round r's batch of train images, labelled by `annotator`: its `ImageResult`s."""
    batch = sp.train_ids[r * cfg.images:(r + 1) * cfg.images]
    return [annotator.annotate(i, sp.ground_truth[i]) for i in batch]


def annotator_config(cfg: BenchConfig) -> AnnotatorConfig:
    return AnnotatorConfig(max_clicks=cfg.max_clicks, click_budget=cfg.click_budget)


def baseline(cfg: BenchConfig, train: list, val: list, root: Path) -> list[dict]:
    """The starting model's figures on each round's batch, annotated in a project of its
    own under `root` (the same images, so the same image ids and object orders)."""
    sp = make_synthetic_project(root, train, val)
    state = load_state(sp.project.root, ServerSettings(model="tiny", model_poll=0))
    try:
        annotator = SimulatedAnnotator(sp.project, state.segmenter, "simulated",
                                       annotator_config(cfg))
        out = []
        for r in range(cfg.rounds + 1):
            out.append(batch_figures(annotate_batch(annotator, sp, cfg, r)))
            print(f"baseline: batch {r} takes the starting model "
                  f"{out[-1]['clicks_per_mask']:.2f} clicks per mask", flush=True)
        return out
    finally:
        state.close()


def markdown_table(rows: list[dict]) -> str:
    """The rows as the README's table: each round's own batch (`maskengine status` pools
    the rounds one version served), validation of the version that served it."""
    lines = ["| round | served version | masks | clicks/mask | starting model, same batch | "
             "masks/image | s/mask | val mIoU@1 | val NoC@90 | the round trained after it |",
             "|---" * 10 + "|"]
    for row in rows:
        lines.append(
            f"| {row['round']} | {row['version_id']} | {row['batch_masks']} | "
            f"{row['batch_clicks_per_mask']:.2f} | {row['start_clicks_per_mask']:.2f} | "
            f"{row['batch_masks_per_image']:.1f} | {row['batch_seconds_per_mask']:.1f} | "
            f"{row['val_miou1']:.3f} | {row['val_noc90']:.2f} | {row.get('note', '-')} |")
    return "\n".join(lines)


def collect_rows(project, log: list[dict]) -> list[dict]:
    """The benchmark's rows for the rounds in `log`: the store's per-version figures."""
    with project.session() as s:
        stats = {row.version_id: row.to_dict() for row in round_stats(s)}
    rows = []
    for entry in log:
        st = stats[entry["version_id"]]
        # A version serving two rounds (a round not promoted) pools both batches.
        rows.append({**entry, "masks": st["masks"], "images": st["images"],
                     "clicks_per_mask": st["clicks_per_mask"],
                     "masks_per_image": st["masks_per_image"],
                     "seconds_per_mask": st["seconds_per_mask"],
                     "val_miou1": st["val_miou1"], "val_noc90": st["val_noc90"]})
    return rows


def summary(cfg: BenchConfig, start_sha: str, rows: list[dict], training, replay,
            replay_fraction: float, t_start: float) -> dict:
    # Each round's own batch (the store pools the rounds one version served).
    fall = 1 - rows[-1]["batch_clicks_per_mask"] / rows[0]["batch_clicks_per_mask"] \
        if rows[0]["batch_clicks_per_mask"] else None
    last = rows[-1]
    paired = 1 - last["batch_clicks_per_mask"] / last["start_clicks_per_mask"] \
        if last["start_clicks_per_mask"] else None
    return {"config": asdict(cfg), "environment": environment(),
            "start_weights_sha256": start_sha, "rows": rows,
            "recipe": {**training.to_dict(), "replay": replay,
                       "replay_fraction": replay_fraction if replay else 0.0},
            "clicks_per_mask_fall": fall, "goal": ">= 0.40",
            "paired_fall_last_round": paired,
            "total_seconds": round(time.perf_counter() - t_start, 1)}


def main() -> None:
    cfg = parse_args()
    set_process_threads(cfg.threads)
    start_sha = bundled_sha256()  # the starting model: the figures hold for it only
    scenes = SceneConfig(height=cfg.scene_size, width=cfg.scene_size, family="organic")
    # Seeds far from the ones any training used; train and val streams differ.
    train = [generate_scene(scenes, 5000 + cfg.seed, i)
             for i in range(cfg.images * (cfg.rounds + 1))]
    val = [generate_scene(scenes, 6000 + cfg.seed, i) for i in range(cfg.val_images)]
    tmp = Path(tempfile.mkdtemp(prefix="maskengine-data-engine-"))
    try:
        start = baseline(cfg, train, val, tmp / "baseline")
        if cfg.baseline_only:
            out = write_results(f"{cfg.name}_baseline", {
                "config": asdict(cfg), "environment": environment(),
                "start_weights_sha256": start_sha, "batches": start})
            print(out)
            return
        sp = make_synthetic_project(tmp / "rounds", train, val)
        state = load_state(sp.project.root, ServerSettings(model="tiny", model_poll=0))
        given = {k: v for k, v in (("steps", cfg.steps), ("lr", cfg.lr)) if v}
        training = round_training_config({**given, "seed": cfg.seed})
        default_round = RoundConfig()
        replay = default_round.replay if cfg.replay == "default" else (cfg.replay or None)
        replay_fraction = cfg.replay_fraction or default_round.replay_fraction
        log: list[dict] = []
        t_start = time.perf_counter()
        for r in range(cfg.rounds + 1):
            seg = state.segmenter
            annotator = SimulatedAnnotator(sp.project, seg, "simulated", annotator_config(cfg))
            t0 = time.perf_counter()
            results = annotate_batch(annotator, sp, cfg, r)
            batch_fig = batch_figures(results)
            entry = {"round": r, "version_id": seg.model_version_id,
                     "annotate_seconds": round(time.perf_counter() - t0, 1),
                     **{f"batch_{k}": v for k, v in batch_fig.items()},
                     **{f"start_{k}": v for k, v in start[r].items()},
                     "unfinished_objects": sum(len(x.objects) - len(x.saved)
                                               for x in results)}
            print(f"round {r}: annotated {len(results)} images with version "
                  f"{seg.model_version_id}", flush=True)
            if r < cfg.rounds:
                round_cfg = RoundConfig(training=training, max_clicks=cfg.max_clicks,
                                        replay=replay, replay_fraction=replay_fraction)
                res = run_round(sp.project, round_cfg, progress=False)
                entry.update(next_version=res.version_id, promoted=res.promoted,
                             note=res.note, train_seconds=res.metrics["train"]["seconds"])
                with sp.project.session() as s:
                    served = served_version(s).id
                if served != seg.model_version_id:
                    state.switch_to(segmenter_for(sp.project, state.settings, served))
            log.append(entry)
            # Saved after every round: a run stopped early still leaves its figures.
            rows = collect_rows(sp.project, log)
            write_results(cfg.name, {"status": f"partial: {r + 1} of {cfg.rounds + 1} rounds",
                                     **summary(cfg, start_sha, rows, training, replay,
                                               replay_fraction, t_start)})
        rows = collect_rows(sp.project, log)
        state.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = summary(cfg, start_sha, rows, training, replay, replay_fraction, t_start)
    out = write_results(cfg.name, {"status": "complete", **result})
    fall = result["clicks_per_mask_fall"]
    plot(rows, RESULTS / f"{cfg.name}.png")
    print(markdown_table(rows))
    print(f"clicks per mask fell by {fall:.0%} (goal >= 40%), on the last batch by "
          f"{result['paired_fall_last_round']:.0%} against the starting model; "
          f"{out}, {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
