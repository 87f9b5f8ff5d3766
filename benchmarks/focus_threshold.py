"""Which masks should the focus pass zoom in on? The interactive protocol for several
`FocusConfig.max_fraction` values (the largest box side, as a share of the image's longest
side, that gets a focus crop), on scenes of the family the bundled model was trained on.

The shipped threshold (0.19) was chosen on 1-click mIoU. Rounds pay in clicks to IoU 0.9,
so this study reports NoC@85 / NoC@90, NoF@90 and mIoU@1, overall and by object size
(COCO area buckets), to see whether medium objects would gain from a crop too. Writes
results/<name>.json.

    OMP_NUM_THREADS=1 python benchmarks/focus_threshold.py --images 20 --fractions 0.19,0.3,0.45
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bundled_sha256, environment, parse_config, write_results  # noqa: E402
from maskengine.evaluation import evaluate_interactive  # noqa: E402
from maskengine.evaluation_job import EvalConfig, eval_samples, load_eval_model  # noqa: E402
from maskengine.focus import FocusConfig, FocusPredictor  # noqa: E402
from maskengine.threads import set_process_threads  # noqa: E402

FIGURES = ("miou@1", "noc@85", "noc@90", "nof@90")


@dataclass(frozen=True)
class StudyConfig:
    images: int = 20
    data_seed: int = 1000  # the seed of the bundled model's shipped figures
    fractions: str = "0.19,0.3,0.45"
    context: float = 2.0
    max_clicks: int = 20
    threads: int = 1
    name: str = "focus_threshold"


def main() -> None:
    cfg: StudyConfig = parse_config(StudyConfig, __doc__.split("\n\n")[0])  # type: ignore
    set_process_threads(cfg.threads)
    fractions = [float(f) for f in cfg.fractions.split(",")]
    for f in fractions:  # bad values fail before the model loads
        FocusConfig(max_fraction=f, context=cfg.context)
    eval_cfg = EvalConfig(model="tiny", data_seed=cfg.data_seed, num_images=cfg.images)
    _, samples = eval_samples(eval_cfg)
    model, *_ = load_eval_model(eval_cfg)
    runs = {}
    for f in fractions:
        t0 = time.perf_counter()
        predictor = FocusPredictor(model, FocusConfig(max_fraction=f, context=cfg.context))
        report = evaluate_interactive(predictor, samples(), max_clicks=cfg.max_clicks)
        runs[str(f)] = {**report.summary(), "seconds": round(time.perf_counter() - t0, 1)}
        s = runs[str(f)]
        print(f"max_fraction {f}: " + ", ".join(
            f"{k} {s['default'][k]:.3f}" for k in FIGURES) + "; medium " + ", ".join(
            f"{k} {s['by_size']['medium']['default'][k]:.3f}" for k in FIGURES), flush=True)
    out = write_results(cfg.name, {"config": asdict(cfg), "environment": environment(),
                                   "start_weights_sha256": bundled_sha256(), "runs": runs})
    print(out)


if __name__ == "__main__":
    main()
