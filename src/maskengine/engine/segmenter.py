"""Interactive segmentation for the annotation server: prompts on a cached embedding ->
candidate masks as COCO RLE.

Stateless per call (the embedding comes from the cache, the previous mask comes back from
the client as low-res logits), so many clients can predict at once without sharing a
`Predictor`'s per-image state.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from ..config import SamConfig
from ..focus import FocusConfig, focus_crop, focus_default, resample_logits
from ..modeling import Sam, create_model
from ..modeling.registry import bundled_weights_path
from ..predictor import decode_prompts, input_frame_prompts
from ..transforms import ResizeLongestSide, preprocess_shape
from . import rle
from .display import Box, Display, MaskView, in_image, mask_view, render_view
from .embeddings import EmbeddingCache
from .errors import BadImage
from .prompts import ImageRef, Prompt, Region, _checked, _in_region
from .store import file_sha256


@dataclass(frozen=True)
class Candidate:
    counts: str  # COCO RLE of the H x W mask (of the display view, with one)
    bbox: tuple[float, float, float, float]  # XYWH, image pixels
    area: int  # image pixels
    score: float  # predicted IoU
    low_res: np.ndarray  # L x L float16 logits, to send back as the next mask_input
    view: MaskView | None = None  # where `counts` lies when drawn for a display
    region: Region | None = None  # the crop the model saw (None: the whole image)


@dataclass(frozen=True)
class BoxMask:
    """The model's mask for one box prompt: H x W bool, its predicted IoU and its
    stability score (IoU of the masks at logit thresholds +offset and -offset)."""

    mask: np.ndarray
    iou: float
    stability: float


@dataclass(frozen=True)
class ModelSpec:
    """Which network serves the annotators: a registered name, or a config file + checkpoint."""

    name: str = "tiny"
    config_path: str | None = None
    checkpoint: str | None = None

    def load(self, device: str = "cpu") -> Sam:
        return create_model(self.config_path or self.name, checkpoint=self.checkpoint,
                            device=device)

    def weights_file(self) -> str | None:
        return self.checkpoint or (
            str(p) if (p := bundled_weights_path(self.name)) and not self.config_path else None
        )


def model_key(config: SamConfig, weights: str | None) -> tuple[str, str | None]:
    """(identity of a model = hash of its config and weights, sha256 of the weights file).
    A model without weights file (random init) gets a key of its config alone."""
    wsha = file_sha256(Path(weights)) if weights and os.path.isfile(weights) else None
    blob = json.dumps(config.to_dict(), sort_keys=True) + (wsha or "random")
    return hashlib.sha256(blob.encode()).hexdigest(), wsha


class Segmenter:
    """One model version: its embedding cache and a stateless `predict`.

    `focus`: the focus pass (`maskengine.focus`) for prompts on the whole image: a small
    answer is asked again on a crop around it. None: on for models with an input under
    1024 (`focus_default`); False: off; a `FocusConfig`: on with those settings."""

    def __init__(
        self, model: Sam, model_version_id: int, cache_root: Path, *, memory_items: int = 16,
        name: str = "", round: int = 0, focus: FocusConfig | bool | None = None,
    ) -> None:
        self.model = model
        if focus is None or focus is True:
            focus = FocusConfig() if focus or focus_default(model) else None
        self.focus: FocusConfig | None = focus or None
        self.model_version_id = model_version_id
        self.name = name or f"version {model_version_id}"
        self.round = round
        self.transform = ResizeLongestSide(model.config.image_size)
        # All decodes run on one thread, one at a time: concurrent ones would only split the
        # same cores, and each thread that calls torch keeps its own OpenMP team, so calls
        # from the server's many request threads would oversubscribe the CPU.
        self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        # The decoder's positional grid depends on nothing but the weights; computing it per
        # call costs ~20 ms for vit_b on 2 CPU cores.
        with torch.inference_mode():
            self._dense_pe = model.prompt_encoder.get_dense_pe()
        self.cache = EmbeddingCache(
            cache_root, model_version_id, self._encode, memory_items=memory_items
        )

    @property
    def low_res_size(self) -> int:
        return self.model.config.low_res_size

    @torch.inference_mode()
    def _encode(self, source: Path | tuple[Path, Region]) -> torch.Tensor:
        """The embedding of an image file, or of a crop (file, region) of it."""
        path, region = source if isinstance(source, tuple) else (source, None)
        try:
            with PILImage.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
            if region is not None:
                rgb = np.ascontiguousarray(rgb[region[1]:region[3], region[0]:region[2]])
        except FileNotFoundError as exc:
            raise BadImage(f"image file {path} is missing") from exc
        except (OSError, ValueError) as exc:  # PIL: truncated or not an image
            raise BadImage(f"image file {path} cannot be read: {exc}") from exc
        resized = self.transform.apply_image(rgb)
        x = torch.as_tensor(resized, device=self.model.device).permute(2, 0, 1)[None].float()
        return self.model.encode_image(x)

    def embedding(self, image: ImageRef) -> torch.Tensor:
        return self.cache.get(image.sha256, image.path)

    def prefetch(self, images: list[ImageRef]) -> None:
        self.cache.prefetch((im.sha256, im.path) for im in images)

    def predict(self, image: ImageRef, prompt: Prompt, region: Region | None = None,
                display: Display | None = None,
                mask_region: Region | None = None) -> list[Candidate]:
        """Candidates sorted by predicted IoU, best first (3 with multimask, else 1).

        With `region` (from `check_region`), the model sees only that crop of the image at
        its full input resolution (an embedding of the crop, cached like an image's), so a
        small object of a big picture gets the model's full detail; `low_res` is in the
        crop's frame (send it back with the same region).

        Without `region`, the focus pass (when on) picks one: when the best candidate is
        small, the prompt (mask_input resampled into the crop) is asked again on a square
        crop around it, and its answer comes back instead. `Candidate.region` says which
        crop an answer was made on; later prompts on that mask send it as their `region`.

        `mask_region`: the frame prompt.mask_input was made in when it is not `region`'s
        (a prompt outside an answer's crop drops the crop but keeps its logits; the whole
        image is (0, 0, W, H)): the logits are resampled into `region`'s frame."""
        whole = (0, 0, image.width, image.height)
        given, given_frame = prompt.mask_input, tuple(mask_region or region or whole)
        if given is not None and given_frame != tuple(region or whole):
            prompt = replace(prompt, mask_input=resample_logits(
                given[None], given_frame, region or whole)[0])
        cands = self._predict(image, prompt, region, display)
        if region is not None or self.focus is None or not cands[0].area:
            return cands
        pos = np.zeros((0, 2)) if prompt.points is None else prompt.points[prompt.labels > 0]
        x, y, w, h = cands[0].bbox
        size = (image.height, image.width)
        crop = focus_crop((x, y, x + w, y + h), pos, size, self.focus)
        if crop is None:
            return cands
        x0, y0, side = crop
        # From the frame the logits were made in (not via the whole image's coarser grid).
        mask = None if given is None else resample_logits(
            given[None], given_frame, (x0, y0, x0 + side, y0 + side))[0]
        focused = self._predict(image, replace(prompt, mask_input=mask),
                                (x0, y0, x0 + side, y0 + side), display)
        return focused if focused[0].area else cands  # an empty crop answer helps nobody

    @torch.inference_mode()
    def _predict(self, image: ImageRef, prompt: Prompt, region: Region | None,
                 display: Display | None) -> list[Candidate]:
        """`predict` on the given frame (the whole image or `region`), no focus pass.

        Without `display`, masks are full resolution, in the image frame. With it, they
        cover only the image pixels on screen, at the screen's resolution
        (`Candidate.view`; see `engine.display`): the cost depends on the screen, not on
        the picture. Their `bbox` and `area` are then in image pixels, estimated from the
        display mask; `engine.display.full_mask` makes the full-resolution mask at accept."""
        size = (image.height, image.width)
        if region is not None:
            prompt = _in_region(prompt, region)
            frame = (region[3] - region[1], region[2] - region[0])
            key = f"{image.sha256}_r{'_'.join(map(str, region))}"
            feats = self.cache.get(key, (image.path, region))
        else:
            frame, feats = size, self.embedding(image)
        box = region or (0, 0, image.width, image.height)
        view = None if display is None else mask_view(display, *size)
        # The Predictor's checks and frame transform, on a cached embedding.
        coords, labels, boxes, masks = _checked(prompt, self.low_res_size)
        points, boxes, masks = input_frame_prompts(
            self.transform, frame, None if coords is None else coords[None],
            None if labels is None else labels[None], None if boxes is None else boxes[None],
            None if masks is None else masks[None], self.model.device)
        input_size = preprocess_shape(frame[0], frame[1], self.model.config.image_size)
        shown, low_np, scores = self._decoder.submit(
            self._decode, feats.to(self.model.device), points, boxes, masks, prompt.multimask,
            input_size, frame, box, view
        ).result()
        if region is not None and view is None:
            pasted = np.zeros((len(shown), *size), dtype=bool)
            pasted[:, region[1]:region[3], region[0]:region[2]] = shown
            shown = pasted
        out = []
        for i in np.argsort(-scores, kind="stable"):
            enc = rle.encode(shown[i])
            bbox, area = enc.bbox, enc.area
            if view is not None:
                bbox, area = in_image(enc.bbox, enc.area, view)
            out.append(Candidate(counts=enc.counts, bbox=bbox, area=area,
                                 score=float(scores[i]), low_res=low_np[i], view=view,
                                 region=region))
        return out

    def run(self, fn, *args):  # noqa: ANN001, ANN002, ANN201 - any torch work
        """fn(*args) on the decoder thread (torch work of requests, one at a time)."""
        return self._decoder.submit(fn, *args).result()

    @torch.inference_mode()
    def _decode(
        self, feats: torch.Tensor, points: tuple | None, boxes: torch.Tensor | None,
        masks: torch.Tensor | None, multimask: bool, input_size: tuple[int, int],
        size: tuple[int, int], box: Box, view: MaskView | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """On the decoder thread: -> masks C x H x W bool (full resolution of the frame, or
        the display view), low-res C x L x L fp16, IoU C."""
        if view is None:
            full, iou, low_res = decode_prompts(self.model, feats, points, boxes, masks,
                                                multimask, input_size, size,
                                                dense_pe=self._dense_pe)
            return (full[0].cpu().numpy(), low_res[0].cpu().numpy().astype(np.float16),
                    iou[0].cpu().numpy())
        low_res, iou = self.model.decode(feats, points, boxes, masks, multimask, self._dense_pe)
        low_np = low_res[0].cpu().numpy().astype(np.float16)
        # Drawn from the fp16 logits the page keeps, so the mask made from them at accept
        # is the one that was shown.
        shown = render_view(torch.from_numpy(low_np.astype(np.float32)),
                            self.model.config.image_size, box, view,
                            self.model.mask_threshold)
        return shown, low_np, iou[0].cpu().numpy()

    @torch.inference_mode()
    def decode_boxes(self, image: ImageRef, boxes: np.ndarray, *, multimask: bool = False,
                     stability_offset: float = 1.0, batch: int = 16) -> list[BoxMask]:
        """One mask per box (N x 4, x0 y0 x1 y1 original-frame pixels) on the image's cached
        embedding; with `multimask`, the candidate of highest predicted IoU. Runs on the
        decoder thread, like `predict`."""
        feats = self.embedding(image).to(self.model.device)
        return self._decoder.submit(self._decode_boxes, feats, image,
                                    np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                                    multimask, stability_offset, batch).result()

    @torch.inference_mode()
    def _decode_boxes(self, feats: torch.Tensor, image: ImageRef, boxes: np.ndarray,
                      multimask: bool, offset: float, batch: int) -> list[BoxMask]:
        from ..masks import stability_score

        size = (image.height, image.width)
        input_size = preprocess_shape(*size, self.model.config.image_size)
        thr = self.model.mask_threshold
        out: list[BoxMask] = []
        for s in range(0, len(boxes), batch):
            b = torch.as_tensor(self.transform.apply_boxes(boxes[s:s + batch], size),
                                dtype=torch.float32, device=self.model.device)
            low, iou = self.model.decode(feats, None, b, None, multimask, self._dense_pe)
            best = iou.argmax(1)
            rows = torch.arange(len(b))
            logits = self.model.postprocess_masks(low[rows, best][:, None], input_size,
                                                  size)[:, 0]
            stab = stability_score(logits, thr, offset)
            for k in range(len(b)):
                out.append(BoxMask(mask=(logits[k] > thr).cpu().numpy(),
                                   iou=float(iou[k, best[k]]), stability=float(stab[k])))
        return out

    def close(self) -> None:
        self._decoder.shutdown(wait=True)
        self.cache.close()
