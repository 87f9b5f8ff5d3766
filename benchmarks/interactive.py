"""Predict latency of the annotation server over HTTP, with the image embedding cached.

For each model (the bundled `tiny` and `vit_b` dimensions with random weights): a project
of one 640x480 image, `maskengine serve` in a subprocess with --threads (2 by default), the
embedding computed once, then click sequences (4 clicks each; clicks after the first send
the previous best mask back as mask_input) from 1 and from 8 concurrent clients. Baseline in
the same command: the same prompts through `Segmenter.predict` in process, no HTTP.

    python benchmarks/interactive.py                  # both models, writes results JSON
    python benchmarks/interactive.py --models tiny --requests 100
    python benchmarks/interactive.py --models tiny --sizes 640x480 6000x4500 \
        --out interactive_picture_size                # click cost against picture size

With --sizes, it measures instead how a click's cost depends on the picture: per size, a
synthetic picture, one client clicking in sequences, each click asked twice: as older
clients do (full-resolution masks of the whole picture) and as the page does (`display`:
masks at the size of the screen that shows the picture fitted, 933 x 700 at most), in
process and over HTTP (wall time and server CPU per request); and accept, as before (the
client sends the full-resolution RLE it got) and now (the server makes the mask from the
candidate's logits, `shape`).

Prints p50 / p99 per setting and writes benchmarks/results/interactive.json. The client
runs on the same machine as the server and takes some of its CPU. Also recorded: the
server's CPU time per request (user + system, from /proc), which a busy machine inflates
far less than wall time.

OpenMP's workers spin while they wait for work (OMP_WAIT_POLICY=ACTIVE, GNU's default); on
a machine shared with other jobs that makes torch calls many times slower (seen here at
load 9 on 2 cores: 184 ms vs 40 ms p50 in process). Unless the variable is set, the
benchmark restarts itself with PASSIVE, which the server it starts inherits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import torch

from maskengine.engine.segmenter import ImageRef, ModelSpec, Segmenter, make_prompt
from maskengine.engine.store import init_project
from maskengine.threads import set_process_threads

sys.path.insert(0, str(Path(__file__).parent))
from common import run_threads, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "tests" / "fixtures" / "reference" / "image0.png"  # 640 x 480
CLICKS = 4


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2),
            "mean_ms": round(float(a.mean()), 2)}


def clicks(rng: np.random.Generator, n: int) -> list[list[dict]]:
    """n requests' point lists, in sequences of CLICKS growing clicks."""
    out = []
    while len(out) < n:
        pts: list[dict] = []
        for _ in range(CLICKS):
            pts = [*pts, {"x": float(rng.uniform(0, 640)), "y": float(rng.uniform(0, 480)),
                          "label": int(rng.random() < 0.75)}]
            out.append(pts)
    return out[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_process(model_name: str, requests: int, threads: int) -> dict:
    """Segmenter.predict without HTTP, called from a worker thread as the server's requests
    are: on a busy machine OpenMP's spinning workers make calls from the main thread many
    times slower (seen here: 1.3 s vs 20 ms per call at load 10 on 2 cores)."""
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(_in_process(model_name, requests,
                                                                   threads)))
    worker.start()
    worker.join()
    return out


def _in_process(model_name: str, requests: int, threads: int) -> dict:
    set_process_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = ModelSpec(model_name).load()
        seg = Segmenter(model, 0, Path(tmp))
        ref = ImageRef(id=1, path=IMAGE, sha256="bench", height=480, width=640)
        seg.embedding(ref)
        times, prev = [], None
        for i, pts in enumerate(clicks(np.random.default_rng(0), requests + 10)):
            prompt = make_prompt(ref, points=[(p["x"], p["y"], p["label"]) for p in pts],
                                 box=None, low_res_size=seg.low_res_size,
                                 mask_input=prev if len(pts) > 1 else None)
            t0 = time.perf_counter()
            best = seg.predict(ref, prompt)[0]
            if i >= 10:
                times.append((time.perf_counter() - t0) * 1000)
            prev = best.low_res.astype("<f2").tobytes()
        seg.close()
    return stats(times)


def client_run(url: str, token: str, pts_list: list[list[dict]], out: list[float],
               sizes: list[int]) -> None:
    prev = None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=120) as c:
        for pts in pts_list:
            body = {"points": pts, "mask_input": prev if len(pts) > 1 else None}
            prev = timed_predict(c, body, out, sizes)["candidates"][0]["low_res"]


def timed_predict(c: httpx.Client, body: dict, times: list[float], sizes: list[int]) -> dict:
    """POST one predict request for image 1; appends its milliseconds and response bytes."""
    t0 = time.perf_counter()
    r = c.post("/api/images/1/predict", json=body)
    times.append((time.perf_counter() - t0) * 1000)
    r.raise_for_status()
    sizes.append(len(r.content))
    return r.json()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def served(model_name: str, image: Path, threads: int) -> Iterator[tuple]:
    """`maskengine serve` in a process of its own on a fresh project of one image: yields
    (process, url, token) once it answers; stopped afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        shutil.copy(image, images / image.name)
        project, token = init_project(Path(tmp) / "project", images)
        project.close()
        port = free_port()
        cmd = [sys.executable, "-c", "from maskengine.cli import app; app()", "serve",
               str(Path(tmp) / "project"), "--port", str(port), "--model", model_name,
               "--threads", str(threads)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    if httpx.get(f"{url}/api/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            yield proc, url, token
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def over_http(model_name: str, requests: int, threads: int, clients_list: list[int]) -> dict:
    res: dict = {}
    with served(model_name, IMAGE, threads) as (proc, url, token):
        t0 = time.perf_counter()
        httpx.post(f"{url}/api/images/1/embedding", timeout=600,
                   headers={"Authorization": f"Bearer {token}"}).raise_for_status()
        res["encoder_s"] = round(time.perf_counter() - t0, 2)
        warm: list[float] = []
        client_run(url, token, clicks(np.random.default_rng(1), 10), warm, [])
        for n_clients in clients_list:
            per = max(requests // n_clients, 25)
            times: list[list[float]] = [[] for _ in range(n_clients)]
            sizes: list[int] = []
            ths = [threading.Thread(target=client_run, args=(
                url, token, clicks(np.random.default_rng(100 + k), per), times[k], sizes))
                for k in range(n_clients)]
            cpu0 = cpu_seconds(proc.pid)
            wall = run_threads(ths)
            cpu1 = cpu_seconds(proc.pid)
            flat = [x for ts in times for x in ts]
            res[f"http_{n_clients}_clients"] = {
                **stats(flat), "requests_per_s": round(len(flat) / wall, 1),
                "server_cpu_ms_per_request": None if cpu0 is None or cpu1 is None
                else round((cpu1 - cpu0) * 1000 / len(flat), 2),
                "response_kb": round(float(np.mean(sizes)) / 1024, 1)}
    return res


SCREEN = (933, 700)  # the page's canvas on a 1200 x 800 window


def picture(tmp: Path, w: int, h: int) -> Path:
    """A smooth picture with a disk, saved as JPEG (as cameras give them)."""
    from PIL import Image
    yy, xx = np.ogrid[:h, :w]
    img = np.empty((h, w, 3), np.uint8)
    img[...] = np.array([70, 110, 160], np.uint8)
    img[..., 1] = (90 + 60 * yy / h).astype(np.uint8)
    img[(xx - w * 0.45) ** 2 + (yy - h * 0.45) ** 2 <= (min(w, h) / 6) ** 2] = (230, 60, 40)
    path = tmp / "images" / f"picture_{w}x{h}.jpg"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(img).save(path, quality=95)
    return path


def display_for(w: int, h: int) -> list[int]:
    """The screen size of a w x h picture fitted on the page (never enlarged)."""
    s = min(1.0, SCREEN[0] / w, SCREEN[1] / h)
    return [max(1, round(w * s)), max(1, round(h * s))]


def size_clicks(w: int, h: int, n: int) -> list[list[dict]]:
    return [[{**p, "x": p["x"] * w / 640, "y": p["y"] * h / 480} for p in pts]
            for pts in clicks(np.random.default_rng(7), n)]


def size_in_process(model_name: str, path: Path, w: int, h: int, requests: int,
                    threads: int) -> dict:
    """Segmenter.predict per click, full resolution against display size (see in_process
    for why a worker thread)."""
    from maskengine.engine.display import Display

    out: dict = {}

    def work() -> None:
        set_process_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            seg = Segmenter(ModelSpec(model_name).load(), 0, Path(tmp))
            ref = ImageRef(id=1, path=path, sha256="bench", height=h, width=w)
            seg.embedding(ref)
            for name, display in (("full_resolution", None),
                                  ("display", Display(size=tuple(display_for(w, h))))):
                times, prev = [], None
                for i, pts in enumerate(size_clicks(w, h, requests + 2)):
                    prompt = make_prompt(ref, points=[(p["x"], p["y"], p["label"]) for p in pts],
                                         box=None, low_res_size=seg.low_res_size,
                                         mask_input=prev if len(pts) > 1 else None)
                    t0 = time.perf_counter()
                    best = seg.predict(ref, prompt, None, display)[0]
                    if i >= 2:
                        times.append((time.perf_counter() - t0) * 1000)
                    prev = best.low_res.astype("<f2").tobytes()
                out[name] = stats(times)
            seg.close()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    return out


def size_over_http(model_name: str, path: Path, w: int, h: int, requests: int,
                   threads: int) -> dict:
    """One client over HTTP: predict without and with `display`, then accept by counts and
    by shape."""
    res: dict = {}
    with served(model_name, path, threads) as (proc, url, token):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                          timeout=600) as c:
            c.post("/api/images/1/embedding").raise_for_status()
            last: dict = {}
            for name, display in (("full_resolution", None),
                                  ("display", {"size": display_for(w, h)})):
                times, sizes, prev = [], [], None
                cpu0 = cpu_seconds(proc.pid)
                for i, pts in enumerate(size_clicks(w, h, requests + 2)):
                    if i == 2:
                        cpu0, times, sizes = cpu_seconds(proc.pid), [], []
                    body = {"points": pts, "mask_input": prev if len(pts) > 1 else None,
                            "display": display}
                    last[name] = timed_predict(c, body, times, sizes)
                    prev = last[name]["candidates"][0]["low_res"]
                cpu1 = cpu_seconds(proc.pid)
                res[f"predict_{name}"] = {
                    **stats(times), "server_cpu_ms_per_request": None if cpu0 is None
                    else round((cpu1 - cpu0) * 1000 / len(times), 2),
                    "response_kb": round(float(np.mean(sizes)) / 1024, 1)}
            full = last["full_resolution"]["candidates"][0]["counts"]
            low = last["display"]["candidates"][0]["low_res"]
            bodies = {"counts": {"counts": full}, "shape": {"shape": {"low_res": low}}}
            for name, body in bodies.items():
                times = []
                for _ in range(max(3, requests // 4)):
                    t0 = time.perf_counter()
                    c.post("/api/images/1/masks", json=body).raise_for_status()
                    times.append((time.perf_counter() - t0) * 1000)
                res[f"accept_{name}"] = {**stats(times), "request_kb": round(
                    len(json.dumps(body)) / 1024, 1)}
    return res


def picture_sizes(args: argparse.Namespace) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            path = picture(Path(tmp), w, h)
            n = args.requests if w * h <= 4e6 else max(8, args.big_requests)
            for name in args.models:
                r = {"display": display_for(w, h), "requests": n,
                     "in_process": size_in_process(name, path, w, h, n, args.threads),
                     **size_over_http(name, path, w, h, n, args.threads)}
                out.setdefault(name, {})[size] = r
                print(f"{name} {size}: display {r['display']}")
                for key, v in [*r["in_process"].items(), *r.items()]:
                    if isinstance(v, dict) and "p50_ms" in v:
                        cpu = v.get("server_cpu_ms_per_request")
                        extra = f"  server CPU {cpu} ms/request" if cpu is not None else ""
                        print(f"  {key:26s} p50 {v['p50_ms']:8.1f} ms{extra}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["tiny", "vit_b"])
    ap.add_argument("--requests", type=int, default=200, help="requests per setting")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--out", default="interactive", help="results/<out>.json")
    ap.add_argument("--sizes", nargs="+", help="picture sizes WxH: measure the click cost "
                    "against the picture's size instead (see above)")
    ap.add_argument("--big-requests", type=int, default=20,
                    help="with --sizes: requests per setting on pictures over 4 MP")
    args = ap.parse_args()
    if "OMP_WAIT_POLICY" not in os.environ:
        # OpenMP reads it when torch loads it, which has happened: start again with it set.
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    results: dict = {
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "cpu_count": os.cpu_count(), "server_threads": args.threads,
                        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
                        "load_avg_at_start": os.getloadavg()[0]},
        "settings": {"requests": args.requests, "clicks_per_sequence": CLICKS,
                     "image": "640x480", "clients": args.clients},
        "models": {},
    }
    if args.sizes:
        results["settings"] = {"requests": args.requests, "big_requests": args.big_requests,
                               "clicks_per_sequence": CLICKS, "sizes": args.sizes,
                               "screen": list(SCREEN), "command": "python " + " ".join(sys.argv)}
        results["models"] = picture_sizes(args)
        results["environment"]["load_avg_at_end"] = os.getloadavg()[0]
        print(f"wrote {write_results(args.out, results)}")
        return
    for name in args.models:
        r = {"in_process_1_client": in_process(name, args.requests, args.threads),
             **over_http(name, args.requests, args.threads, args.clients)}
        results["models"][name] = r
        print(f"{name}: encoder {r['encoder_s']} s (once per image)")
        for key, v in r.items():
            if isinstance(v, dict):
                cpu = v.get("server_cpu_ms_per_request")
                extra = f"  server CPU {cpu} ms/request" if cpu is not None else ""
                print(f"  {key:22s} p50 {v['p50_ms']:8.1f} ms  p99 {v['p99_ms']:8.1f} ms{extra}")
    results["environment"]["load_avg_at_end"] = os.getloadavg()[0]
    path = write_results(args.out, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
