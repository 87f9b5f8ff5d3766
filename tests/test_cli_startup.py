"""The command line starts without loading the network: `--help` imports no torch, numpy or
database layer, and its text stays as it was (options come from the config dataclasses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HELP = Path(__file__).parent / "fixtures" / "cli_help"
COMMANDS = ["root", "info", "init", "classes", "check", "snapshot", "diff", "add-images",
            "add-user", "export", "serve", "train", "status", "eval", "auto", "import-auto",
            "stats", "drift", "evalset", "prompts", "detector", "prefill"]
HEAVY = ("torch", "numpy", "cv2", "sqlalchemy", "fastapi", "maskengine.generator", "ray")


def _help(command: str) -> str:
    args = [] if command == "root" else [command]
    env = {**os.environ, "COLUMNS": "100", "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    out = subprocess.run([sys.executable, "-m", "maskengine.cli", *args, "--help"],
                         capture_output=True, text=True, env=env, check=True)
    return out.stdout


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_text_is_unchanged(command):
    # Fixtures: the help of each command before its imports were made lazy.
    assert _lines(_help(command)) == _lines((HELP / f"{command}.txt").read_text())


@pytest.mark.parametrize("args", [[], ["train"], ["auto"], ["import-auto"], ["eval"],
                                  ["serve"], ["export"], ["check"], ["classes"], ["stats"],
                                  ["drift"], ["evalset"], ["prompts"], ["prefill"],
                                  ["detector"]])
def test_help_loads_nothing_heavy(args):
    code = ("import sys; from maskengine.cli import app\n"
            f"try: app({[*args, '--help']!r})\n"
            "except SystemExit: pass\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_import_maskengine_is_light_and_lazy():
    code = ("import sys, maskengine; print('torch' in sys.modules); "
            "print(maskengine.Predictor.__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "Predictor", "True"]
