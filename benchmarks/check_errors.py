"""Do the quality checks find wrong masks? Plant known errors in a simulated project and
see where the checks rank them.

A project of synthetic scenes is annotated by the simulated annotator (clicks like the
evaluation protocol, with the bundled tiny model; masks the model cannot reach are brushed
to the ground truth, as a person would). Then about 10% of the masks are made wrong
(`maskengine.quality.inject`: shifted, eroded, dilated, swapped between two objects,
saved twice) and `run_checks` ranks every mask. With k planted errors, the figures are the
share of them in the top 2k (recall; goal >= 0.9) and the share of the top 2k that are
planted (precision at that cut; goal >= 0.7). With exactly k errors the top 2k can hold at most
k of them, so precision there is at most 0.5: precision and recall are also reported at k
and for the masks the checks flag (score >= 0.5, what a reviewer is sent first). Each
signal alone is ranked the same way. Writes results/check_errors.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_errors.py            # ~2 min, 1 core
    .venv/bin/python benchmarks/check_errors.py --images 8 --name check_errors_smoke
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, parse_config, write_results  # noqa: E402
from maskengine.data import SceneConfig, generate_scene  # noqa: E402
from maskengine.engine.simulate import (  # noqa: E402
    AnnotatorConfig,
    SimulatedAnnotator,
    make_synthetic_project,
)
from maskengine.quality.checks import CheckConfig, MaskCheck, run_checks  # noqa: E402
from maskengine.quality.inject import plant_errors  # noqa: E402
from maskengine.server.app import load_state  # noqa: E402
from maskengine.server.settings import ServerSettings  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    images: int = 100
    scene_size: int = 160
    max_objects: int = 8
    max_clicks: int = 5
    fraction: float = 0.1
    seed: int = 0
    threads: int = 1
    name: str = "check_errors"


def parse_args() -> BenchConfig:
    return parse_config(BenchConfig, __doc__.split("\n\n")[0])  # type: ignore[return-value]


def cut(ranked: list[int], planted: set[int], n: int) -> dict:
    top = ranked[:n]
    hits = sum(1 for m in top if m in planted)
    return {"n": n, "recall": hits / len(planted), "precision": hits / max(1, len(top))}


SIGNALS = {
    "model": lambda c: (None if c.model_iou_box is None
                        else 1 - max(c.model_iou_box, c.model_iou_clicks or 0.0)),
    "edges": lambda c: c.edge_weakness,
    "clicks": lambda c: c.click_errors / c.clicks if c.clicks else None,
    "duplicate": lambda c: 1.0 if c.duplicate_of is not None else 0.0,
}


def main() -> None:
    cfg = parse_args()
    torch.set_num_threads(cfg.threads)
    scenes = SceneConfig(height=cfg.scene_size, width=cfg.scene_size, min_objects=2,
                         max_objects=cfg.max_objects)
    tmp = Path(tempfile.mkdtemp(prefix="check_errors_"))
    try:
        t0 = time.perf_counter()
        train = [generate_scene(scenes, cfg.seed, i) for i in range(cfg.images)]
        sp = make_synthetic_project(tmp, train, [])
        state = load_state(sp.project.root, ServerSettings(model="tiny", model_poll=0,
                                                           threads=cfg.threads))
        annotator = SimulatedAnnotator(sp.project, state.segmenter, "simulated",
                                       AnnotatorConfig(max_clicks=cfg.max_clicks))
        for i in sp.train_ids:
            annotator.annotate(i, sp.ground_truth[i])
        t_annotate = time.perf_counter() - t0
        planted = plant_errors(sp.project, fraction=cfg.fraction, seed=cfg.seed)
        kinds = {p.mask_id: p.kind for p in planted}
        t0 = time.perf_counter()
        report = run_checks(sp.project, CheckConfig(), segmenter=state.segmenter)
        t_check = time.perf_counter() - t0
        state.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    k = len(planted)
    ranked = [c.mask_id for c in report.masks]
    found = set(ranked[:2 * k]) & kinds.keys()
    by_kind = {kind: {"planted": n, "found_in_top_2k": sum(
        1 for m in found if kinds[m] == kind)} for kind, n in Counter(kinds.values()).items()}
    per_signal = {}
    for name, fn in SIGNALS.items():
        order = sorted(report.masks, key=lambda c: (-(fn(c) or 0.0), c.mask_id))
        per_signal[name] = cut([c.mask_id for c in order], set(kinds), 2 * k)
    result = {
        "config": asdict(cfg),
        "masks": len(report.masks),
        "planted": k,
        "top_2k": cut(ranked, set(kinds), 2 * k),
        "top_k": cut(ranked, set(kinds), k),
        "flagged": cut(ranked, set(kinds), sum(1 for c in report.masks if c.score >= 0.5)),
        "by_kind": by_kind,
        "per_signal_top_2k": per_signal,
        "goal": {"recall_top_2k": 0.9, "precision_top_2k": 0.7},
        "seconds": {"annotate": round(t_annotate, 1), "check": round(t_check, 1)},
        "masks_detail": [_row(c, kinds) for c in report.masks],
        "environment": environment(),
    }
    path = write_results(cfg.name, result)
    t2, t1 = result["top_2k"], result["top_k"]
    print(f"{len(report.masks)} masks, {k} planted errors")
    print(f"top 2k ({t2['n']}): recall {t2['recall']:.2f}, precision {t2['precision']:.2f}; "
          f"top k: recall {t1['recall']:.2f}, precision {t1['precision']:.2f}")
    f = result["flagged"]
    print(f"flagged (score >= 0.5, {f['n']}): recall {f['recall']:.2f}, "
          f"precision {f['precision']:.2f}")
    for kind, v in by_kind.items():
        print(f"  {kind:9s} {v['found_in_top_2k']}/{v['planted']}")
    for name, v in per_signal.items():
        print(f"  signal {name:9s} alone: recall {v['recall']:.2f} precision {v['precision']:.2f}")
    print(f"annotate {t_annotate:.0f} s, check {t_check:.0f} s; {path}")


def _row(c: MaskCheck, kinds: dict[int, str]) -> dict:
    return {"mask_id": c.mask_id, "planted": kinds.get(c.mask_id), "score": round(c.score, 4),
            "area": c.area, "iou_box": c.model_iou_box, "iou_clicks": c.model_iou_clicks,
            "edge_weakness": c.edge_weakness, "clicks": c.clicks,
            "click_errors": c.click_errors, "flags": c.flags}


if __name__ == "__main__":
    main()
