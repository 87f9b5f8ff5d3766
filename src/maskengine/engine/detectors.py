"""The project's detector (stage 2): trained on the boxes of the accepted masks of the
train split (rejected pre-fills as hard negatives), on the served model's cached image
embeddings, measured on the validation split (AP50, recall), saved atomically under
PROJECT/detectors/ and registered as a `DetectorVersion` of that model version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sqlalchemy import select

from ..atomic import atomic_open
from ..detection import (
    Detection,
    DetectorConfig,
    DetectorHead,
    DetectorSample,
    decode_detections,
    evaluate_detections,
    train_detector_head,
)
from ..transforms import preprocess_shape
from .models import DetectorVersion, Image, Mask, ModelVersion, PrefillState
from .project_dataset import accepted
from .segmenter import ImageRef, Segmenter
from .store import Project, file_sha256


class DetectorError(ValueError):
    """No detector to use, or nothing to train one on."""


def version_segmenter(project: Project, version_id: int, device: str = "cpu") -> Segmenter:
    """A Segmenter (model + embedding cache) of a registered model version."""
    from .versions import load_version

    with project.session() as s:
        mv = s.get(ModelVersion, version_id)
        if mv is None:
            raise DetectorError(f"model version {version_id} does not exist")
        model = load_version(project, mv, device)
        name, number = mv.name, mv.round
    return Segmenter(model, version_id, project.cache_dir / "embeddings", name=name,
                     round=number)


def image_ref(project: Project, image: Image) -> ImageRef:
    return ImageRef(id=image.id, path=project.image_path(image), sha256=image.sha256,
                    height=image.height, width=image.width)


def frame(image_size: int, height: int, width: int) -> tuple[tuple[int, int], float, float]:
    """(resized h, w), x scale, y scale: original pixels -> the model's input frame."""
    h_in, w_in = preprocess_shape(height, width, image_size)
    return (h_in, w_in), w_in / width, h_in / height


def _xyxy(rows: list[tuple[float, float, float, float]], sx: float, sy: float) -> torch.Tensor:
    """XYWH original-frame boxes -> N x 4 XYXY input frame."""
    b = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    return torch.stack([b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2]) * sx,
                        (b[:, 1] + b[:, 3]) * sy], 1)


@dataclass(frozen=True)
class LabelledImage:
    ref: ImageRef
    boxes: list[tuple[float, float, float, float]]  # accepted masks, XYWH original frame
    negatives: list[tuple[float, float, float, float]]  # rejected pre-fills


def labelled_images(project: Project, split: str, max_images: int = 0) -> list[LabelledImage]:
    """Images of `split` with at least one accepted mask, with their boxes and the boxes of
    their rejected pre-fills, by id."""
    box = (Mask.bbox_x, Mask.bbox_y, Mask.bbox_w, Mask.bbox_h)
    with project.session() as s:
        rows = s.execute(accepted(select(Image, *box).join(Mask, Mask.image_id == Image.id)
                                  .where(Image.split == split)).order_by(Image.id, Mask.id))
        by_image: dict[int, tuple[Image, list]] = {}
        for image, *b in rows:
            by_image.setdefault(image.id, (image, []))[1].append(tuple(b))
        ids = list(by_image)[:max_images] if max_images else list(by_image)
        negs: dict[int, list] = {}
        for iid, *b in s.execute(select(Mask.image_id, *box).where(
                Mask.prefill_state == PrefillState.rejected.value, Mask.image_id.in_(ids))):
            negs.setdefault(iid, []).append(tuple(b))
        return [LabelledImage(image_ref(project, by_image[i][0]), by_image[i][1],
                              negs.get(i, [])) for i in ids]


def _sample(seg: Segmenter, item: LabelledImage) -> DetectorSample:
    size, sx, sy = frame(seg.model.config.image_size, item.ref.height, item.ref.width)
    emb = seg.embedding(item.ref)[0].half()
    return DetectorSample(emb, _xyxy(item.boxes, sx, sy), _xyxy(item.negatives, sx, sy), size)


@torch.no_grad()
def detect(head: DetectorHead, cfg: DetectorConfig, embedding: torch.Tensor, image_size: int,
           height: int, width: int) -> list[Detection]:
    """Detections on one image (embedding 1 x C x E x E) in its original frame, best first."""
    size, sx, sy = frame(image_size, height, width)
    heat, wh, off = head(embedding.float())
    cell = image_size / heat.shape[-1]
    return decode_detections(heat[0], wh[0], off[0], cell=cell, input_size=size,
                             scale=(sx, sy), max_detections=cfg.max_detections)


def evaluate(head: DetectorHead, cfg: DetectorConfig, seg: Segmenter,
             items: list[LabelledImage]) -> dict:
    """AP50 and recall of `head` on `items` against their accepted masks' boxes."""
    dets, truths = [], []
    size = seg.model.config.image_size
    for it in items:
        dets.append(detect(head, cfg, seg.embedding(it.ref), size, it.ref.height,
                           it.ref.width))
        b = np.array(it.boxes, dtype=np.float64).reshape(-1, 4)
        truths.append(np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], 1))
    return evaluate_detections(dets, truths).to_dict()


@dataclass(frozen=True)
class DetectorResult:
    detector_id: int
    model_version_id: int
    metrics: dict


def train_detector(
    project: Project, cfg: DetectorConfig | None = None, *, segmenter: Segmenter,
    log: Callable[[str], None] = print, max_val_images: int = 50,
) -> DetectorResult:
    """Train a detector on the embeddings of `segmenter`'s model version, measure it on the
    validation images, save and register it. DetectorError when no train image has an
    accepted mask."""
    cfg = cfg or DetectorConfig()
    train_items = labelled_images(project, "train")
    if not train_items:
        raise DetectorError("no accepted masks on train-split images: annotate some before "
                            "training a detector")
    image_size = segmenter.model.config.image_size
    samples = [_sample(segmenter, it) for it in train_items]
    log(f"detector: training on {sum(len(s.boxes) for s in samples)} boxes of "
        f"{len(samples)} images ({sum(len(s.negatives) for s in samples)} rejected "
        f"pre-fills as negatives), model version {segmenter.model_version_id}")
    head, figures = train_detector_head(samples, image_size, cfg)
    val_items = labelled_images(project, "val", max_val_images)
    metrics = {"train": figures, "train_fit": evaluate(head, cfg, segmenter, train_items[:50])}
    if val_items:
        metrics["val"] = evaluate(head, cfg, segmenter, val_items)
        v = metrics["val"]
        log(f"detector: validation AP50 {v['ap50']:.3f}, recall {v['recall50']:.3f} on "
            f"{v['boxes']} boxes of {v['images']} images")
    else:
        log("detector: no accepted masks on validation images: AP50 / recall not measured")
    return _register(project, segmenter, head, cfg, metrics)


def _register(project: Project, seg: Segmenter, head: DetectorHead, cfg: DetectorConfig,
              metrics: dict) -> DetectorResult:
    folder = project.root / "detectors"
    folder.mkdir(parents=True, exist_ok=True)
    with project.session() as s:
        n = (s.scalar(select(DetectorVersion.id).order_by(DetectorVersion.id.desc())
                      .limit(1)) or 0) + 1
        mv = s.get(ModelVersion, seg.model_version_id)
        path = folder / f"detector_{n:03d}.pt"
        with atomic_open(path) as f:
            torch.save({"in_channels": head.trunk[0].in_channels,
                        "state_dict": head.state_dict()}, f)
        dv = DetectorVersion(model_version_id=seg.model_version_id,
                             name=f"detector {n} on {mv.name}", config_json=json.dumps(
                                 cfg.to_dict()), weights=str(path.relative_to(project.root)),
                             weights_sha256=file_sha256(path), metrics_json=json.dumps(metrics))
        s.add(dv)
        s.flush()
        return DetectorResult(dv.id, seg.model_version_id, metrics)


def current_detector(s, model_version_id: int) -> DetectorVersion | None:  # noqa: ANN001
    """The newest detector trained on model version `model_version_id`'s embeddings."""
    return s.scalar(select(DetectorVersion).where(
        DetectorVersion.model_version_id == model_version_id)
        .order_by(DetectorVersion.id.desc()).limit(1))


def load_detector(project: Project, dv: DetectorVersion) -> tuple[DetectorHead, DetectorConfig]:
    cfg = DetectorConfig(**json.loads(dv.config_json))
    path = project.root / dv.weights
    if not path.is_file():
        raise DetectorError(f"detector {dv.id}: weights file {path} is missing")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    head = DetectorHead(int(blob["in_channels"]), cfg)
    head.load_state_dict(blob["state_dict"])
    return head.eval(), cfg


def has_detector(project: Project) -> bool:
    """Whether the project uses stage 2 (a detector was ever trained)."""
    with project.session() as s:
        return s.scalar(select(DetectorVersion.id).limit(1)) is not None


def retrain_after_round(project: Project, cfg: DetectorConfig, mv_id: int, metrics: dict,
                        log: Callable[[str], None], *, device: str = "cpu",
                        max_val_images: int = 50) -> dict:
    """After a round: train the detector on the served model (the new version when
    promoted) and record its figures in model version `mv_id`'s metrics ("detector")."""
    from .versions import served_version

    with project.session() as s:
        served_id = served_version(s).id
    seg = version_segmenter(project, served_id, device)
    try:
        res = train_detector(project, cfg, segmenter=seg, max_val_images=max_val_images,
                             log=log)
    except DetectorError as exc:
        log(f"detector not retrained: {exc}")
        return metrics
    finally:
        seg.close()
    metrics = {**metrics, "detector": {"id": res.detector_id,
                                       "model_version_id": res.model_version_id,
                                       **res.metrics}}
    with project.session() as s:
        s.get(ModelVersion, mv_id).metrics_json = json.dumps(metrics)
    return metrics
