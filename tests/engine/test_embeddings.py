"""The embedding cache: once per (image, model version), fp16 on disk, shared in flight."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from maskengine.engine.embeddings import EmbeddingCache


class CountingEncoder:
    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[Path] = []
        self.gate = gate

    def __call__(self, path: Path) -> torch.Tensor:
        self.calls.append(path)
        if self.gate is not None:
            self.gate.wait(30)
        g = torch.Generator().manual_seed(len(str(path)))
        return torch.randn(1, 8, 4, 4, generator=g)


def test_computed_once_and_reused_from_disk(tmp_path: Path) -> None:
    enc = CountingEncoder()
    cache = EmbeddingCache(tmp_path, 3, enc, memory_items=1)
    a = cache.get("k1", Path("img1"))
    assert a.shape == (1, 8, 4, 4) and a.dtype == torch.float32
    assert torch.equal(cache.get("k1", Path("img1")), a)
    cache.get("k2", Path("img2"))  # evicts k1 from memory
    assert torch.equal(cache.get("k1", Path("img1")), a)  # from disk
    assert len(enc.calls) == 2
    stored = np.load(tmp_path / "v3" / "k1.npy")
    assert stored.dtype == np.float16 and not list((tmp_path / "v3").glob("*.tmp*"))
    cache.close()
    # Another process (a restarted server) finds it on disk; another model version does not.
    enc2 = CountingEncoder()
    assert torch.equal(EmbeddingCache(tmp_path, 3, enc2).get("k1", Path("img1")), a)
    EmbeddingCache(tmp_path, 4, enc2).get("k1", Path("img1"))
    assert len(enc2.calls) == 1


def test_damaged_file_is_recomputed(tmp_path: Path) -> None:
    enc = CountingEncoder()
    EmbeddingCache(tmp_path, 1, enc).get("k", Path("img"))
    (tmp_path / "v1" / "k.npy").write_bytes(b"half a file")
    EmbeddingCache(tmp_path, 1, enc).get("k", Path("img"))
    assert len(enc.calls) == 2


def test_concurrent_requests_share_one_computation_and_prefetch(tmp_path: Path) -> None:
    gate = threading.Event()
    enc = CountingEncoder(gate)
    cache = EmbeddingCache(tmp_path, 1, enc)
    cache.prefetch([("k", Path("img")), ("k2", Path("img2"))])
    results: list[torch.Tensor] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("k", Path("img"))))
               for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(30)
    cache.close()  # waits for the prefetch of k2
    assert len(results) == 4 and all(torch.equal(r, results[0]) for r in results)
    assert sorted(str(p) for p in enc.calls) == ["img", "img2"]
    assert cache.cached("k2")
