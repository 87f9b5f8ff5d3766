"""Low-resolution mask logits seen at full resolution, without upsampling them.

`Sam.postprocess_masks` maps L x L decoder logits to the original frame in two bilinear
steps (L -> S, crop to the input size, -> H x W). Each step is separable, so a full-
resolution pixel (y, x) is a weighted sum over a small window of low-res rows times a
small window of low-res columns (at most 3 x 3): value = wr(y)^T . L[window] . wc(x).

Group the output rows by the first low-res row of their window (the "row group"), and the
columns likewise. A bilinear value is a convex combination of its window, so if the whole
window of a group pair is above a threshold, every pixel of that block is above it; if the
whole window is at or below, none is. Only the blocks whose window straddles a threshold
(the boundary cells, a small fraction) need their pixels computed. Pixel counts above a
threshold (the stability score) and the mask's box are exact that way, at low-res cost.
The values match `F.interpolate` up to float rounding (~1e-6), which leaves counts and
boxes unchanged except for pixels within that distance of a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _linear_taps(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear (align_corners=False) taps of `F.interpolate` along one axis: for each output
    index, the two input indices and their weights (float64)."""
    scale = n_in / n_out
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    w1 = src - i0
    return i0, i1, torch.stack([1 - w1, w1], dim=1)


@dataclass(frozen=True)
class Axis:
    """One axis of the composite map low-res (n_low) -> output (n_out).

    base: n_out int64, first low-res index of each output index's window.
    weights: n_out x win float32, weights of low-res indices base .. base + win - 1.
    group_start / group_size: per low-res index k, the first output index whose base is k,
    and how many there are (0 when none); group_max = max(group_size).
    """

    base: torch.Tensor
    weights: torch.Tensor
    group_start: torch.Tensor
    group_size: torch.Tensor
    win: int
    group_max: int

    @classmethod
    def build(cls, n_low: int, n_mid: int, n_keep: int, n_out: int) -> Axis:
        """low -> mid (bilinear), keep the first n_keep, -> out (bilinear)."""
        a0, a1, aw = _linear_taps(n_low, n_mid)
        b0, b1, bw = _linear_taps(n_keep, n_out)
        # Output index o reads mid indices b0[o], b1[o]; each reads two low-res indices.
        idx = torch.stack([a0[b0], a1[b0], a0[b1], a1[b1]], dim=1)  # n_out x 4
        wts = torch.stack([bw[:, 0] * aw[b0, 0], bw[:, 0] * aw[b0, 1],
                           bw[:, 1] * aw[b1, 0], bw[:, 1] * aw[b1, 1]], dim=1)
        nz = wts > 0
        big = n_low + 4
        base = torch.where(nz, idx, big).amin(1)
        base = torch.where(base == big, idx[:, 0], base)  # all-zero rows cannot happen; safe
        rel = idx - base[:, None]
        win = int(torch.where(nz, rel, 0).max()) + 1
        weights = torch.zeros(n_out, win, dtype=torch.float64)
        weights.scatter_add_(1, rel.clamp(0, win - 1), torch.where(nz, wts, 0.0))
        if bool((base[1:] < base[:-1]).any()):
            raise AssertionError("window bases must not decrease along an axis")
        size = torch.bincount(base, minlength=n_low)[:n_low]
        start = torch.cumsum(size, 0) - size
        return cls(base, weights.float(), start, size, win, int(size.max()))


class UpsampleMap:
    """Where the low-res logits of one image (or crop) land at full resolution.

    low: side L of the decoder's logits; image_size: S; input_size: (h, w) of the resized
    image inside S x S; out_size: (H, W) of the original image or crop.
    """

    def __init__(
        self, low: int, image_size: int, input_size: tuple[int, int], out_size: tuple[int, int]
    ) -> None:
        self.low = low
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self.rows = Axis.build(low, image_size, input_size[0], out_size[0])
        self.cols = Axis.build(low, image_size, input_size[1], out_size[1])
        # Only groups that hold output pixels matter; per used group: its pixel indices
        # (padded to group_max), their validity and their window weights.
        self.row_groups, self.row_pix, self.row_valid, self.row_w = self._groups(self.rows)
        self.col_groups, self.col_pix, self.col_valid, self.col_w = self._groups(self.cols)

    @staticmethod
    def _groups(axis: Axis) -> tuple[torch.Tensor, ...]:
        used = torch.nonzero(axis.group_size).flatten()
        steps = torch.arange(axis.group_max)
        valid = steps < axis.group_size[used, None]
        pix = torch.where(valid, axis.group_start[used, None] + steps, 0)
        weights = axis.weights[pix] * valid[:, :, None]
        return used, pix, valid, weights

    def _pad(self, logits: torch.Tensor) -> torch.Tensor:
        """B x L x L -> B x (L + wr - 1) x (L + wc - 1), edge values repeated (their
        weights are zero; they only widen the min/max windows, which stays exact)."""
        pr, pc = self.rows.win - 1, self.cols.win - 1
        x = logits
        if pr:
            x = torch.cat([x, x[:, -1:, :].expand(-1, pr, -1)], dim=1)
        if pc:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pc)], dim=2)
        return x

    def _window_levels(self, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """levels: B x Lp x Lp uint8 (thresholds exceeded per low-res value) -> min and max
        over every used group pair's window, B x K x M each."""
        n = self.low
        lo = hi = levels[:, :n]
        for d in range(1, self.rows.win):
            lo = torch.minimum(lo, levels[:, d:d + n])
            hi = torch.maximum(hi, levels[:, d:d + n])
        lo, hi = lo[:, self.row_groups], hi[:, self.row_groups]
        lo2, hi2 = lo[:, :, :n], hi[:, :, :n]
        for d in range(1, self.cols.win):
            lo2 = torch.minimum(lo2, lo[:, :, d:d + n])
            hi2 = torch.maximum(hi2, hi[:, :, d:d + n])
        return lo2[:, :, self.col_groups], hi2[:, :, self.col_groups]

    def _blocks(self, padded: torch.Tensor, cells: torch.Tensor, budget: int = 1_000_000):
        """Pixel values of the blocks of `cells` (n x 3: mask, row group and column group
        positions), a bucket of equal block shapes at a time (no padding waste): yields
        (cells, values n x hr x hc float32, pixel rows n x hr, pixel columns n x hc)."""
        nr = self.rows.group_size[self.row_groups[cells[:, 1]]]
        nc = self.cols.group_size[self.col_groups[cells[:, 2]]]
        key = nr * (self.cols.group_max + 1) + nc
        win = padded.unfold(1, self.rows.win, 1).unfold(2, self.cols.win, 1)
        for shape in torch.nonzero(torch.bincount(key)).flatten().tolist():
            hr, hc = divmod(shape, self.cols.group_max + 1)
            chosen = cells[key == shape]
            step = max(1, budget // (hr * hc))
            for s in range(0, len(chosen), step):
                part = chosen[s:s + step]
                gr, gc = part[:, 1], part[:, 2]
                patch = win[part[:, 0], self.row_groups[gr], self.col_groups[gc]]  # n x wr x wc
                rw = self.row_w[gr, :hr]  # n x hr x wr
                cw = self.col_w[gc, :hc]  # n x hc x wc
                values = torch.bmm(torch.bmm(rw, patch), cw.transpose(1, 2))  # n x hr x hc
                yield part, values, self.row_pix[gr, :hr], self.col_pix[gc, :hc]

    def stats(
        self, logits: torch.Tensor, thresholds: tuple[float, ...], box_threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-resolution pixel counts and box, from low-res logits.

        logits: B x L x L float32. Returns counts B x T int64 (pixels with value >
        thresholds[t]) and boxes B x 4 int64 XYXY inclusive of the pixels > box_threshold
        ([0, 0, 0, 0] when there are none), in this map's output frame.
        """
        b = logits.shape[0]
        levels_t = sorted(set(thresholds) | {box_threshold})
        thr = torch.tensor(levels_t, dtype=logits.dtype)
        padded = self._pad(logits)
        # The value's level = how many of the sorted thresholds it exceeds; a window whose
        # lowest level is > k is entirely above threshold k.
        levels = (padded > thr[0]).to(torch.uint8)
        for t in thr[1:]:
            levels += padded > t
        lo, hi = self._window_levels(levels)
        exact = torch.float32 if self.out_size[0] * self.out_size[1] < 2**24 else torch.float64
        nr = self.rows.group_size[self.row_groups].to(exact)
        nc = self.cols.group_size[self.col_groups].to(exact)
        count_levels = sorted({levels_t.index(t) for t in thresholds})
        per_level = torch.zeros(len(levels_t), b, dtype=torch.int64)
        unsure = torch.zeros(lo.shape, dtype=torch.bool)
        for k in count_levels:
            per_level[k] = (((lo > k).to(exact) @ nc) @ nr).round().long()
            unsure |= (lo <= k) & (hi > k)
        for part, values, _, _ in self._blocks(padded, torch.nonzero(unsure)):
            owner = part[:, 0]
            cell_lo = lo[owner, part[:, 1], part[:, 2]]
            for k in count_levels:  # blocks sure to be above were counted already
                above = (values > thr[k]).sum((1, 2)) * (cell_lo <= k)
                per_level[k].index_add_(0, owner, above)
        counts = torch.stack([per_level[levels_t.index(t)] for t in thresholds], dim=1)
        return counts, self._boxes(padded, lo, hi, levels_t.index(box_threshold), thr)

    def _boxes(
        self, padded: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, k: int,
        thr: torch.Tensor,
    ) -> torch.Tensor:
        """B x 4 XYXY inclusive boxes of the pixels above level k: the extent of the blocks
        sure to be above, widened by the straddling blocks that lie beyond it."""
        sure = lo > k
        big = max(self.out_size) + 1
        y0, y1 = self._extent(sure.any(2), self.row_pix, self.row_valid, big)
        x0, x1 = self._extent(sure.any(1), self.col_pix, self.col_valid, big)
        cells = torch.nonzero((lo <= k) & (hi > k))
        m, gr, gc = cells[:, 0], cells[:, 1], cells[:, 2]
        ry0 = self.row_pix[gr, 0]
        ry1 = ry0 + self.rows.group_size[self.row_groups[gr]] - 1
        cx0 = self.col_pix[gc, 0]
        cx1 = cx0 + self.cols.group_size[self.col_groups[gc]] - 1
        outside = (ry0 < y0[m]) | (ry1 > y1[m]) | (cx0 < x0[m]) | (cx1 > x1[m])
        cells = cells[outside]
        for part, values, ys, xs in self._blocks(padded, cells):
            pos = values > thr[k]
            owner = part[:, 0]
            py0, py1 = self._extent(pos.any(2), ys, None, big)
            px0, px1 = self._extent(pos.any(1), xs, None, big)
            y0.scatter_reduce_(0, owner, py0, "amin")
            y1.scatter_reduce_(0, owner, py1, "amax")
            x0.scatter_reduce_(0, owner, px0, "amin")
            x1.scatter_reduce_(0, owner, px1, "amax")
        boxes = torch.stack([x0, y0, x1, y1], dim=1)
        return boxes * (y1 >= 0).unsqueeze(1)

    @staticmethod
    def _extent(
        hit: torch.Tensor, pix: torch.Tensor, valid: torch.Tensor | None, big: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """First and last pixel index over the hit groups (hit: N x G bool; pix: G x g or
        N x G ... pixel indices of each group) -> N each; (big, -1) when nothing is hit."""
        if valid is None:  # per-cell pixel rows: hit is n x g over the cell's own pixels
            first = torch.where(hit, pix, big).amin(1)
            last = torch.where(hit, pix, -1).amax(1)
            return first, last
        first_pix = pix[:, 0]
        last_pix = torch.where(valid, pix, -1).amax(1)
        first = torch.where(hit, first_pix, big).amin(1)
        last = torch.where(hit, last_pix, -1).amax(1)
        return first, last

    def window(self, box: torch.Tensor) -> tuple[int, int, int, int]:
        """Low-res window (r0, r1, c0, c1), end-exclusive in padded coordinates, that every
        pixel of the XYXY-inclusive `box` reads."""
        x0, y0, x1, y1 = (int(v) for v in box)
        r0, r1 = int(self.rows.base[y0]), int(self.rows.base[y1]) + self.rows.win
        c0, c1 = int(self.cols.base[x0]), int(self.cols.base[x1]) + self.cols.win
        return r0, r1, c0, c1

    def crop_window(self, logits: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """logits L x L -> the (copied) padded window that `render` needs for `box`."""
        r0, r1, c0, c1 = self.window(box)
        return self._pad(logits[None])[0, r0:r1, c0:c1].clone()

    @staticmethod
    def _dense(axis: Axis, start: int, stop: int, first: int, width: int) -> torch.Tensor:
        """(stop - start) x width weights of output indices start..stop-1 over window
        indices first..first+width-1."""
        idx = torch.arange(start, stop)
        cols = (axis.base[idx] - first)[:, None] + torch.arange(axis.win)
        dense = torch.zeros(len(idx), width + axis.win)
        dense.scatter_(1, cols, axis.weights[idx])
        return dense[:, :width]

    def render(
        self, window: torch.Tensor, box: torch.Tensor, threshold: float
    ) -> torch.Tensor:
        """Full-resolution mask (values > threshold) inside XYXY-inclusive `box`, from the
        window `crop_window` returned: (y1 - y0 + 1) x (x1 - x0 + 1) bool."""
        x0, y0, x1, y1 = (int(v) for v in box)
        r0, _, c0, _ = self.window(box)
        wr = self._dense(self.rows, y0, y1 + 1, r0, window.shape[0])
        wc = self._dense(self.cols, x0, x1 + 1, c0, window.shape[1])
        return (wr @ window @ wc.T) > threshold
