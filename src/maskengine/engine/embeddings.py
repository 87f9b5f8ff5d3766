"""Image embeddings computed once per (image, model version), kept on disk and in memory.

Disk layout: `ROOT/v{model_version_id}/{image sha256}.npy`, 1 x C x E x E float16, written
atomically. A new model version gets a new folder, so versions never mix and switching
models needs no invalidation. A background worker computes embeddings ahead for the next
images of the queue; a request for an image whose embedding is being computed waits for
that computation instead of starting a second one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_open, remove_stale_temps

# What to encode (an image file, or whatever the owner's encoder takes, e.g. a file and a
# crop) -> 1 x C x E x E float32.
Encoder = Callable[[object], torch.Tensor]


class EmbeddingCache:
    """Memory (LRU) -> disk (fp16) -> encoder, for one model version."""

    def __init__(
        self, root: Path, model_version_id: int, encode: Encoder, *, memory_items: int = 16
    ) -> None:
        self.dir = Path(root) / f"v{model_version_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.dir)
        self.encode = encode
        self.memory_items = memory_items
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._inflight: dict[str, Future] = {}
        self._lock = threading.Lock()
        # One encoder at a time: two would only share the same cores and both finish late.
        self._encode_lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    def _file(self, key: str) -> Path:
        return self.dir / f"{key}.npy"

    def _remember(self, key: str, emb: torch.Tensor) -> None:
        with self._lock:
            self._memory[key] = emb
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def cached(self, key: str) -> bool:
        with self._lock:
            if key in self._memory:
                return True
        return self._file(key).is_file()

    def _load_or_compute(self, key: str, path: Path) -> torch.Tensor:
        file = self._file(key)
        if file.is_file():
            try:
                emb = torch.from_numpy(np.load(file).astype(np.float32))
                self._remember(key, emb)
                return emb
            except (OSError, ValueError):
                file.unlink(missing_ok=True)  # damaged: compute it again
        with self._encode_lock:
            emb = self.encode(path).float().cpu()
        with atomic_open(file) as f:
            np.save(f, emb.numpy().astype(np.float16))
        # Serve what the disk holds (fp16-rounded) so a cached and a fresh embedding of the
        # same image give the same masks.
        emb = emb.half().float()
        self._remember(key, emb)
        return emb

    def get(self, key: str, path: Path) -> torch.Tensor:
        """The embedding of image `path` (content hash `key`), computing it if needed."""
        with self._lock:
            emb = self._memory.get(key)
            if emb is not None:
                self._memory.move_to_end(key)
                return emb
            fut = self._inflight.get(key)
            if fut is None:
                fut = Future()
                self._inflight[key] = fut
                owner = True
            else:
                owner = False
        if not owner:
            return fut.result()
        try:
            emb = self._load_or_compute(key, path)
            fut.set_result(emb)
            return emb
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def prefetch(self, items: Iterable[tuple[str, Path]]) -> None:
        """Compute in the background the embeddings of `items` (key, path) not cached yet."""
        for key, path in items:
            with self._lock:
                if key in self._memory or key in self._inflight:
                    continue
            self._worker.submit(self._prefetch_one, key, path)

    def _prefetch_one(self, key: str, path: Path) -> None:
        try:
            self.get(key, path)
        except Exception:  # noqa: BLE001 - a bad image is reported when it is opened
            pass

    def drop_memory(self) -> None:
        """Forget the in-memory copies (the files stay): for a model no longer served."""
        with self._lock:
            self._memory.clear()

    def remove_files(self) -> None:
        """Delete this version's embedding files (its model is no longer kept)."""
        import shutil

        self.drop_memory()
        shutil.rmtree(self.dir, ignore_errors=True)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
