"""How long `maskengine --help` and `maskengine <command> --help` take, as fresh processes.

Each figure is the median wall time of a new Python process running the command line, next
to a bare `python -c pass` measured interleaved with it (the interpreter's own start, the
baseline), and `python -c "import maskengine"`. Goal: every help under 1 s.

    python benchmarks/cli_startup.py [--repeat 5] [--src OTHER_CHECKOUT/src --out NAME]

--src times another checkout (e.g. the tree before imports were made lazy); writes
benchmarks/results/<out>.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import environment, timeit_side_by_side, write_results  # noqa: E402

SRC = Path(__file__).resolve().parent.parent / "src"
COMMANDS = ["info", "init", "add-images", "add-user", "export", "serve", "train", "status",
            "eval", "auto"]


def run(args: list[str], env: dict) -> None:
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--src", default=str(SRC), help="the src folder to time")
    parser.add_argument("--out", default="cli_startup")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": args.src, "COLUMNS": "100"}
    cases = {"python -c pass": ["-c", "pass"],
             "import maskengine": ["-c", "import maskengine"],
             "maskengine --help": ["-m", "maskengine.cli", "--help"],
             **{f"maskengine {c} --help": ["-m", "maskengine.cli", c, "--help"]
                for c in COMMANDS}}
    times = timeit_side_by_side({k: partial(run, v, env) for k, v in cases.items()},
                                repeat=args.repeat)
    base = times["python -c pass"]["median_s"]
    helps = {k: v for k, v in times.items() if k.endswith("--help")}
    for name, t in times.items():
        print(f"{name:32s} {t['median_s']:6.3f} s  (min {t['min_s']:.3f})")
    slowest = max(helps, key=lambda k: helps[k]["median_s"])
    print(f"slowest help: {slowest} {helps[slowest]['median_s']:.3f} s; "
          f"python alone {base:.3f} s")
    path = write_results(args.out, {
        "environment": {**environment(), "load_avg": os.getloadavg()[0], "src": args.src},
        "repeat": args.repeat,
        "seconds": {k: round(v["median_s"], 3) for k, v in times.items()},
        "min_seconds": {k: round(v["min_s"], 3) for k, v in times.items()},
        "slowest_help": {"command": slowest, "median_s": round(helps[slowest]["median_s"], 3)},
        "all_helps_under_1s": all(v["median_s"] < 1.0 for v in helps.values()),
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
