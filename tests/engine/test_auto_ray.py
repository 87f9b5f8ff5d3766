"""`maskengine auto` on a real Ray cluster (started on 127.0.0.1 for these tests, two worker
slots): the same files as the local runner, resume, bad images, and a worker process killed
in the middle of a job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from maskengine.cli import app
from maskengine.data import SceneConfig, generate_scene
from maskengine.data.sa1b_write import is_complete_sa1b
from maskengine.engine.auto_ray import ModelSource, RayConfig, run_auto_ray

from ..ray_cluster import throwaway_ray

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SETTINGS = ["--model", "tiny", "--pred-iou-thresh", "0", "--stability-score-thresh", "0.8"]


@pytest.fixture(scope="module")
def cluster():
    import ray  # noqa: F401 - `make test` installs the extra: without it this must fail

    with throwaway_ray(num_cpus=2) as c:
        yield c


def _scenes(folder: Path, n: int, size: tuple[int, int] = (96, 128)) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        s = generate_scene(SceneConfig(height=size[0], width=size[1]), 11, i)
        sub = folder / ("sub" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray(s.image).save(sub / f"scene{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


def _ray_cli(cluster, *args: str, workers: int = 2,
             timeout: float = 240) -> subprocess.CompletedProcess:
    """The command as a user types it, in its own process (a Ray driver)."""
    res = subprocess.run([sys.executable, "-m", "maskengine.cli", "auto", *args,
                          "--ray-address", cluster.address, "--workers", str(workers),
                          "--no-progress"],
                         env=cluster.env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.json"))
            if p.name not in ("summary.json",)}


def test_ray_job_writes_the_local_runners_files_and_resumes(cluster, tmp_path):
    images = _scenes(tmp_path / "images", 6)
    common = [str(images), *SETTINGS, "--points-per-side", "8"]
    local = CliRunner().invoke(app, ["auto", *common, "--out", str(tmp_path / "local"),
                                     "--threads", "1", "--no-progress"])
    assert local.exit_code == 0, local.output

    res = _ray_cli(cluster, *common, "--out", str(tmp_path / "ray"))
    assert "7 images: 6 annotated, 0 already done, 1 failed" in res.stdout
    assert "images/s" in res.stdout
    ray_files, local_files = _outputs(tmp_path / "ray"), _outputs(tmp_path / "local")
    assert sorted(ray_files) == sorted(local_files) == [
        "run.json", "scene0.json", "scene2.json", "scene4.json", "sub/scene1.json",
        "sub/scene3.json", "sub/scene5.json"]
    assert ray_files == local_files  # byte for byte, run record included
    assert sum(len(json.loads(b)["annotations"]) for k, b in ray_files.items()
               if k != "run.json") > 6
    errors = [json.loads(x) for x in (tmp_path / "ray" / "errors.jsonl").read_text().split("\n")
              if x]
    assert [e["name"] for e in errors] == ["broken.png"] and "unreadable" in errors[0]["reason"]
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert (summary["processed"], summary["failed"], summary["skipped"]) == (6, 1, 0)

    # A rerun skips the complete images and retries the bad one.
    (tmp_path / "ray" / "scene2.json").write_text('{"image": {"width"')  # a torn file
    res = _ray_cli(cluster, *common, "--out", str(tmp_path / "ray"), workers=1)
    assert "7 images: 1 annotated, 5 already done, 1 failed" in res.stdout
    assert _outputs(tmp_path / "ray") == local_files

    # Other generator settings into the same folder would mix two kinds of masks.
    bad = CliRunner().invoke(app, ["auto", *common, "--points-per-side", "4", "--out",
                                   str(tmp_path / "ray"), "--ray-address", cluster.address])
    assert bad.exit_code != 0 and "points_per_side" in bad.output


def test_workers_that_cannot_load_the_model_stop_the_job_with_a_clear_error(cluster,
                                                                            tmp_path):
    # The cluster lends no GPU: an actor asked to put its model on one fails to start.
    images = _scenes(tmp_path / "images", 2)
    res = subprocess.run([sys.executable, "-m", "maskengine.cli", "auto", str(images),
                          "--out", str(tmp_path / "out"), *SETTINGS, "--points-per-side", "4",
                          "--device", "cuda", "--ray-address", cluster.address,
                          "--workers", "1", "--no-progress"],
                         env=cluster.env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "error: the Ray job stopped after 0 images" in res.stderr
    assert "a rerun resumes" in res.stderr


def _annotators(cluster) -> dict[int, str]:
    return {pid: cmd for pid, cmd in cluster.processes().items() if "Annotator" in cmd}


def test_worker_killed_mid_job_loses_only_its_images_in_flight(cluster, tmp_path):
    n = 12
    images = _scenes(tmp_path / "images", n, size=(192, 256))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskengine.cli", "auto", str(images), "--out", str(out),
         *SETTINGS, "--points-per-side", "16", "--ray-address", cluster.address,
         "--workers", "2", "--no-progress"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed: dict = {}

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 200
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in out.rglob("scene*.json") if is_complete_sa1b(p)]
            workers = _annotators(cluster)
            if done and workers:
                pid = min(workers)
                os.kill(pid, signal.SIGKILL)
                killed.update(pid=pid, done_before=len(done))
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
        killer.join()
    assert proc.returncode == 0, output
    assert killed, "no worker was killed: the job ended before one could be"
    assert killed["done_before"] < n, "the worker was killed after the job's last image"
    assert killed["pid"] not in _annotators(cluster)
    assert f"{n + 1} images: {n} annotated, 0 already done, 1 failed" in output
    jsons = sorted(out.rglob("scene*.json"))
    assert len(jsons) == n and all(is_complete_sa1b(p) for p in jsons)
    assert not list(out.rglob(".*.tmp"))  # no torn file left by the killed worker
    errors = (out / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 1 and "broken.png" in errors[0]


def test_ray_config_and_paths_are_checked(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        RayConfig(workers=0)
    with pytest.raises(ValueError, match="gpus_per_worker"):
        RayConfig(gpus_per_worker=-1)
    with pytest.raises(ValueError, match="object-store URLs"):
        run_auto_ray(["s3://bucket/images"], tmp_path / "out", ModelSource("tiny", None),
                     None, RayConfig())
