"""Load: simulated annotators against one real server, on SQLite and on PostgreSQL.

Each annotator is a thread with its own HTTP connection and API token, looping for a fixed
time over what a person does in the page: ask for the next image, list its masks, predict
from a click, accept a mask, edit or delete one of their own. Afterwards the store is read
back: every request the server acknowledged (201 accept, 200 edit or delete) must be a row,
every version the client last saw must be the stored one, and no answer may be a 5xx.
Figures per route (count, p50, p99 in ms) and per status go to benchmarks/results/load.json.

    python benchmarks/load.py                      # 16 annotators, 20 s, both databases
    python benchmarks/load.py --seconds 60 --databases sqlite
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from sqlalchemy import func, select  # noqa: E402
from tests.pg_cluster import throwaway_postgres  # noqa: E402
from tests.server.conftest import DISK, REFERENCE, run_server  # noqa: E402

from common import environment, run_threads, write_results  # noqa: E402
from maskengine.engine.models import Mask, MaskChange  # noqa: E402
from maskengine.engine.store import Project, init_project  # noqa: E402
from maskengine.masks import encode_rle  # noqa: E402

H, W = 480, 640  # the reference images, copied so that each is its own record
N_IMAGES = 6


@dataclass
class Tally:
    """What one annotator sent and what the server acknowledged."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    created: dict[int, int] = field(default_factory=dict)  # mask id -> version last seen
    deleted: set[int] = field(default_factory=set)
    edits: int = 0
    errors: list[str] = field(default_factory=list)


def _rect(rng: random.Random) -> str:
    m = np.zeros((H, W), bool)
    y, x = rng.randrange(0, H - 40), rng.randrange(0, W - 40)
    m[y:y + rng.randrange(5, 40), x:x + rng.randrange(5, 40)] = True
    return encode_rle(m)["counts"]


def annotator(url: str, token: str, seed: int, until: float, tally: Tally) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=120) as c:

        def call(route: str, method: str, path: str, **kw) -> httpx.Response | None:
            t0 = time.perf_counter()
            try:
                r = c.request(method, path, **kw)
            except httpx.HTTPError as exc:  # a dropped connection counts as a failure
                tally.statuses["transport error"] += 1
                tally.errors.append(f"{method} {path}: {exc!r}")
                return None
            tally.latencies[route].append(time.perf_counter() - t0)
            tally.statuses[str(r.status_code)] += 1
            if r.status_code >= 500:
                tally.errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            return r

        image = 1
        while time.perf_counter() < until:
            live = [m for m in tally.created if m not in tally.deleted]
            action = rng.choices(["next", "list", "predict", "accept", "edit", "delete"],
                                 weights=[2, 2, 1, 3, 2, 1])[0]
            if action == "next":
                r = call("GET /images/next", "GET", "/api/images/next",
                         params={"after": image, "todo_only": False})
                if r is not None and r.status_code == 200:
                    image = r.json()["id"]
            elif action == "list":
                call("GET /images/{id}/masks", "GET", f"/api/images/{image}/masks")
            elif action == "predict":
                call("POST /images/{id}/predict", "POST", f"/api/images/{image}/predict",
                     json={"points": [{"x": DISK[0], "y": DISK[1], "label": 1}],
                           "multimask": False})
            elif action == "accept" or not live:
                body = {"counts": _rect(rng), "interaction": {
                    "events": [{"t": 0.0, "type": "point", "x": 1.0, "y": 2.0, "label": 1}],
                    "n_clicks": 1, "seconds": 1.0}}
                r = call("POST /images/{id}/masks", "POST", f"/api/images/{image}/masks",
                         json=body)
                if r is not None and r.status_code == 201:
                    tally.created[r.json()["id"]] = r.json()["version"]
            elif action == "edit":
                mid = rng.choice(live)
                r = call("PUT /masks/{id}", "PUT", f"/api/masks/{mid}",
                         json={"version": tally.created[mid], "counts": _rect(rng)})
                if r is not None and r.status_code == 200:
                    tally.created[mid] = r.json()["version"]
                    tally.edits += 1
            else:
                mid = rng.choice(live)
                r = call("DELETE /masks/{id}", "DELETE", f"/api/masks/{mid}",
                         params={"version": tally.created[mid]})
                if r is not None and r.status_code == 200:
                    tally.created[mid] = r.json()["version"]
                    tally.deleted.add(mid)


def _images(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir()
    base = np.asarray(Image.open(REFERENCE / "image0.png").convert("RGB"))
    for k in range(N_IMAGES):
        img = base.copy()
        img[0, 0] = (k, k, k)  # distinct content: not duplicates
        Image.fromarray(img).save(folder / f"{k}.png")
    return folder


def run_one(database: str, annotators: int, seconds: float, tmp: Path) -> dict:
    with ExitStack() as stack:
        db_url = stack.enter_context(throwaway_postgres()) if database == "postgresql" else ""
        root = tmp / f"project-{database}"
        project, _ = init_project(root, _images(tmp / f"images-{database}"), db_url=db_url)
        tokens = [project.add_user(f"annotator{k}") for k in range(annotators)]
        project.close()
        tallies = [Tally() for _ in tokens]
        with run_server(root) as srv:
            until = time.perf_counter() + seconds
            threads = [threading.Thread(target=annotator, args=(srv.url, t, k, until, tally))
                       for k, (t, tally) in enumerate(zip(tokens, tallies, strict=True))]
            wall = run_threads(threads)
        # The server has stopped: the store is read back as it was left.
        return _report(database, annotators, seconds, wall, tallies, root, db_url)


def _report(database: str, annotators: int, seconds: float, wall: float,
            tallies: list[Tally], root: Path, db_url: str) -> dict:
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter = Counter()
    for t in tallies:
        statuses.update(t.statuses)
        for route, xs in t.latencies.items():
            latencies[route].extend(xs)
    seen = {mid: v for t in tallies for mid, v in t.created.items()}
    deleted = {mid for t in tallies for mid in t.deleted}
    edits = sum(t.edits for t in tallies)
    project = Project.open(root, db_url=db_url or None)
    with project.session() as s:
        stored = dict(s.execute(select(Mask.id, Mask.version)).all())
        stored_deleted = set(s.scalars(select(Mask.id).where(Mask.deleted_at.is_not(None))))
        stored_edits = s.scalar(select(func.count()).where(MaskChange.kind == "edit"))
    project.close()
    lost = sorted(set(seen) - set(stored))
    stale = sorted(m for m in seen if m in stored and stored[m] != seen[m])
    checks = {
        "accepted_acknowledged": len(seen), "accepted_stored": len(stored),
        "edits_acknowledged": edits, "edits_stored": stored_edits,
        "deletes_acknowledged": len(deleted), "deletes_stored": len(stored_deleted),
        "lost": lost, "version_differs": stale,
        "server_errors": sum(n for code, n in statuses.items() if code.startswith("5")),
        "transport_errors": statuses.get("transport error", 0),
    }
    checks["ok"] = (not lost and not stale and len(stored) == len(seen)
                    and stored_edits == edits and stored_deleted == deleted
                    and checks["server_errors"] == 0 and checks["transport_errors"] == 0)
    routes = {
        route: {"count": len(xs), "p50_ms": round(1000 * statistics.median(xs), 1),
                "p99_ms": round(1000 * float(np.percentile(xs, 99)), 1)}
        for route, xs in sorted(latencies.items())
    }
    n = sum(len(xs) for xs in latencies.values())
    return {"database": database, "annotators": annotators, "seconds": seconds,
            "wall_s": round(wall, 1), "requests": n, "requests_per_s": round(n / wall, 1),
            "statuses": dict(sorted(statuses.items())), "routes": routes, "checks": checks,
            "first_errors": [e for t in tallies for e in t.errors][:5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--annotators", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"],
                    choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for db in args.databases:
            run = run_one(db, args.annotators, args.seconds, Path(tmp))
            runs.append(run)
            c = run["checks"]
            print(f"{db}: {run['requests']} requests in {run['wall_s']} s "
                  f"({run['requests_per_s']}/s), statuses {run['statuses']}; "
                  f"accepted {c['accepted_acknowledged']} acknowledged / {c['accepted_stored']} "
                  f"stored, edits {c['edits_acknowledged']}/{c['edits_stored']}, deletes "
                  f"{c['deletes_acknowledged']}/{c['deletes_stored']}; ok={c['ok']}")
            for route, r in run["routes"].items():
                print(f"  {route:28s} n={r['count']:5d}  p50 {r['p50_ms']:7.1f} ms  "
                      f"p99 {r['p99_ms']:7.1f} ms")
    path = write_results("load", {"environment": environment(), "runs": runs})
    print(f"wrote {path}")
    if not all(r["checks"]["ok"] for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
