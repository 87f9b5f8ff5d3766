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
import torch.nn.functional as F


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
        # Only groups that hold output pixels matter.
        self.row_groups = torch.nonzero(self.rows.group_size).flatten()
        self.col_groups = torch.nonzero(self.cols.group_size).flatten()

    def _pad(self, logits: torch.Tensor) -> torch.Tensor:
        """B x L x L -> B x (L + wr - 1) x (L + wc - 1), edge values repeated (their
        weights are zero; they only widen the min/max windows, which stays exact)."""
        pr, pc = self.rows.win - 1, self.cols.win - 1
        if pr == 0 and pc == 0:
            return logits
        x = logits
        if pr:
            x = torch.cat([x, x[:, -1:, :].expand(-1, pr, -1)], dim=1)
        if pc:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pc)], dim=2)
        return x

    def _window_extrema(self, padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Min and max of every group pair's window: B x K x M each (K, M used groups)."""
        k = (self.rows.win, self.cols.win)
        x = padded[:, None]
        mx = F.max_pool2d(x, k, stride=1)[:, 0]
        mn = -F.max_pool2d(-x, k, stride=1)[:, 0]
        rg, cg = self.row_groups, self.col_groups
        return mn[:, rg][:, :, cg], mx[:, rg][:, :, cg]

    def _block_values(
        self, padded: torch.Tensor, cells: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Exact pixel values of the blocks of `cells` (n x 3: mask, row group, column group
        positions). Returns values n x gr x gc, validity n x gr x gc, pixel rows n x gr and
        columns n x gc (original frame, clamped where invalid)."""
        r, c = self.rows, self.cols
        kr = self.row_groups[cells[:, 1]]
        kc = self.col_groups[cells[:, 2]]
        win = padded.unfold(1, r.win, 1).unfold(2, c.win, 1)  # B x L x L x wr x wc
        patch = win[cells[:, 0], kr, kc]  # n x wr x wc
        ys = r.group_start[kr, None] + torch.arange(r.group_max)
        xs = c.group_start[kc, None] + torch.arange(c.group_max)
        vr = torch.arange(r.group_max) < r.group_size[kr, None]
        vc = torch.arange(c.group_max) < c.group_size[kc, None]
        ys = torch.where(vr, ys, 0)
        xs = torch.where(vc, xs, 0)
        values = r.weights[ys] @ patch @ c.weights[xs].transpose(1, 2)
        return values, vr[:, :, None] & vc[:, None, :], ys, xs

    def stats(
        self, logits: torch.Tensor, thresholds: tuple[float, ...], box_threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Full-resolution pixel counts and box, from low-res logits.

        logits: B x L x L float32. Returns counts B x T int64 (pixels with value >
        thresholds[t]) and boxes B x 4 int64 XYXY inclusive of the pixels > box_threshold
        ([0, 0, 0, 0] when there are none), in this map's output frame.
        """
        b = logits.shape[0]
        padded = self._pad(logits)
        mn, mx = self._window_extrema(padded)
        r, c = self.rows, self.cols
        # float32 sums of whole pixels are exact below 2^24 pixels.
        exact = torch.float32 if self.out_size[0] * self.out_size[1] < 2**24 else torch.float64
        nr = r.group_size[self.row_groups].to(exact)
        nc = c.group_size[self.col_groups].to(exact)
        thr = torch.tensor(thresholds, dtype=logits.dtype)
        bt = torch.tensor(box_threshold, dtype=logits.dtype)
        counts = torch.empty(len(thresholds), b, dtype=torch.int64)
        unsure = torch.zeros(mn.shape, dtype=torch.bool)
        for t in range(len(thresholds)):
            sure = mn > thr[t]
            counts[t] = ((sure.to(exact) @ nc) @ nr).round().long()
            unsure |= (mn <= thr[t]) & (mx > thr[t])
        unsure |= (mn <= bt) & (mx > bt)
        # Box from the blocks sure to be above box_threshold.
        sure = mn > bt
        ys0 = r.group_start[self.row_groups]
        ys1 = ys0 + r.group_size[self.row_groups] - 1
        xs0 = c.group_start[self.col_groups]
        xs1 = xs0 + c.group_size[self.col_groups] - 1
        big = max(self.out_size) + 1
        rows_any, cols_any = sure.any(2), sure.any(1)
        y0 = torch.where(rows_any, ys0, big).amin(1)
        y1 = torch.where(rows_any, ys1, -1).amax(1)
        x0 = torch.where(cols_any, xs0, big).amin(1)
        x1 = torch.where(cols_any, xs1, -1).amax(1)
        cells = torch.nonzero(unsure)
        # Boundary blocks, a bounded number at a time.
        step = max(1, 2_000_000 // max(1, r.group_max * c.group_max))
        for s in range(0, len(cells), step):
            part = cells[s:s + step]
            values, valid, ys, xs = self._block_values(padded, part)
            owner = part[:, 0]
            cell_mn = mn[part[:, 0], part[:, 1], part[:, 2]]
            for t in range(len(thresholds)):
                # Blocks sure to be above t were counted already.
                n_above = ((values > thr[t]) & valid).sum((1, 2)) * (cell_mn <= thr[t])
                counts[t].index_add_(0, owner, n_above)
            pos = (values > bt) & valid
            prow, pcol = pos.any(2), pos.any(1)
            y0.scatter_reduce_(0, owner, torch.where(prow, ys, big).amin(1), "amin")
            y1.scatter_reduce_(0, owner, torch.where(prow, ys, -1).amax(1), "amax")
            x0.scatter_reduce_(0, owner, torch.where(pcol, xs, big).amin(1), "amin")
            x1.scatter_reduce_(0, owner, torch.where(pcol, xs, -1).amax(1), "amax")
        boxes = torch.stack([x0, y0, x1, y1], dim=1)
        return counts.T, boxes * (y1 >= 0).unsqueeze(1)

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

    def render(
        self, window: torch.Tensor, box: torch.Tensor, threshold: float
    ) -> torch.Tensor:
        """Full-resolution mask (values > threshold) inside XYXY-inclusive `box`, from the
        window `crop_window` returned: (y1 - y0 + 1) x (x1 - x0 + 1) bool."""
        x0, y0, x1, y1 = (int(v) for v in box)
        r0, _, c0, _ = self.window(box)
        r, c = self.rows, self.cols
        ys = torch.arange(y0, y1 + 1)
        xs = torch.arange(x0, x1 + 1)
        ridx = (r.base[ys] - r0)[:, None] + torch.arange(r.win)  # ny x wr
        cidx = (c.base[xs] - c0)[:, None] + torch.arange(c.win)  # nx x wc
        rows = torch.einsum("yr,yrc->yc", r.weights[ys], window[ridx])  # ny x window cols
        values = torch.einsum("yxc,xc->yx", rows[:, cidx], c.weights[xs])
        return values > threshold
