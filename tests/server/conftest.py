"""Fixtures for the annotation server: a project of the reference images, an in-process app
(TestClient) and a real uvicorn subprocess on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from maskengine.engine.store import init_project
from maskengine.server.app import create_app
from maskengine.server.settings import ServerSettings

REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "reference"
# The reference model gives meaningful masks on the reference images and encodes fast.
MODEL_ARGS = {"model_config": str(REFERENCE / "config.json"),
              "checkpoint": str(REFERENCE / "checkpoint.pt")}
# A point on the white disk of image0.png (640 x 480), and one on the black ring around it.
DISK = (265.0, 188.0)


@dataclass
class ProjectInfo:
    root: Path
    token: str


def make_project(tmp: Path, copies: int = 1) -> ProjectInfo:
    images = tmp / "images"
    images.mkdir()
    for i in range(copies):
        for name in ("image0.png", "image1.png"):
            dst = images / (f"{i}_{name}" if copies > 1 else name)
            shutil.copy(REFERENCE / name, dst)
            if i:  # make copies differ in content, so they are not duplicates
                with open(dst, "ab") as f:
                    f.write(bytes([i]))
    project, token = init_project(tmp / "project", images)
    project.close()
    return ProjectInfo(tmp / "project", token)


@pytest.fixture
def project(tmp_path: Path) -> ProjectInfo:
    return make_project(tmp_path)


@pytest.fixture
def client(project: ProjectInfo) -> Iterator[TestClient]:
    app = create_app(project.root, ServerSettings(**MODEL_ARGS, prefetch=2))
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {project.token}"
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen


@contextmanager
def run_server(root: Path, port: int | None = None, timeout: float = 120.0,
               model: list[str] | None = None) -> Iterator[Server]:
    """`maskengine serve` in a subprocess on 127.0.0.1; waits for /api/health. `model`: the
    serve options that choose it (default: the reference model)."""
    port = port or free_port()
    model = model or ["--model-config", MODEL_ARGS["model_config"],
                      "--checkpoint", MODEL_ARGS["checkpoint"]]
    cmd = [sys.executable, "-c", "from maskengine.cli import app; app()", "serve", str(root),
           "--host", "127.0.0.1", "--port", str(port), *model]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield Server(url, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# Browser tests drive Debian's Chromium (Playwright's own download does not work here).
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
