"""Perceptual image hashes for near-duplicate images: dHash (difference hash).

The image is reduced to a (size + 1) x size grey thumbnail; bit (r, c) says whether pixel
(r, c + 1) is brighter than pixel (r, c). Re-encoding, resizing, small crops of the border
and mild colour changes flip few bits, so two copies of one picture are a few bits apart
(Hamming distance) while unrelated pictures differ in about half of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage


def dhash(image: np.ndarray | PILImage.Image, size: int = 8) -> int:
    """The size*size-bit difference hash of an image (H x W x 3 uint8 array or PIL image)."""
    im = image if isinstance(image, PILImage.Image) else PILImage.fromarray(image)
    thumb = np.asarray(im.convert("L").resize((size + 1, size), PILImage.Resampling.BOX),
                       dtype=np.int16)
    bits = (thumb[:, 1:] > thumb[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def dhash_file(path: Path, size: int = 8) -> int:
    with PILImage.open(path) as im:
        im.draft("L", (4 * (size + 1), 4 * size))  # JPEG: decode at a reduced scale, faster
        return dhash(im, size)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass(frozen=True)
class NearPair:
    """Items `a` < `b` (indices into the hashed list) and their distance."""

    a: int
    b: int
    distance: float


def near_duplicates(hashes: Sequence[int], max_distance: int) -> list[NearPair]:
    """All pairs of hashes at most `max_distance` bits apart, closest first. Quadratic in
    the number of images, vectorised: 10k images take a few seconds."""
    n = len(hashes)
    if n < 2:
        return []
    # 64-bit hashes as uint64 words; popcount of XOR through a byte table.
    words = np.array([h & 0xFFFFFFFFFFFFFFFF for h in hashes], dtype=np.uint64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    pairs: list[NearPair] = []
    for i in range(n - 1):
        x = np.bitwise_xor(words[i + 1:], words[i]).view(np.uint8).reshape(-1, 8)
        dist = table[x].sum(1)
        for j in np.nonzero(dist <= max_distance)[0]:
            pairs.append(NearPair(i, i + 1 + int(j), float(dist[j])))
    return sorted(pairs, key=lambda p: (p.distance, p.a, p.b))


def similar_vectors(vectors: np.ndarray, min_cosine: float) -> list[NearPair]:
    """Pairs of rows of `vectors` (N x D) with cosine similarity >= `min_cosine`; the
    distance reported is 1 - cosine."""
    if len(vectors) < 2:
        return []
    v = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = v @ v.T
    a, b = np.nonzero(np.triu(sim >= min_cosine, k=1))
    pairs = [NearPair(int(i), int(j), float(1 - sim[i, j])) for i, j in zip(a, b, strict=True)]
    return sorted(pairs, key=lambda p: (p.distance, p.a, p.b))
