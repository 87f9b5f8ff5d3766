"""A simulated annotator: labels images from ground-truth masks the way the evaluation
protocol clicks, through the same code the web page's requests run (`make_prompt` and
`Segmenter.predict` for /api/images/{id}/predict, `services.create_mask` for accepting,
`services.set_image_status` for "done"), so its masks, clicks and seconds land in the
store exactly like a person's.

Per object (in random order, or largest first): the first click
at the point farthest from the object's boundary; the page shows three candidates and the
annotator keeps the one closest to the object (cycling candidates costs no click); then
each click at the point farthest from the boundary of the largest error region (positive in
a missed region, negative in a spurious one), the previous logits fed back; the mask is
accepted at IoU >= `iou_target` or after `max_clicks` clicks — then, like a person who
sees clicks stop helping, it finishes the mask with the brush (`brush_fix`: the ground
truth is saved, `brush_seconds` credited), so accepted masks are good training data even
when the model is weak. With a click budget per
image, the annotator stops when it is spent (an unfinished object is not saved): a better
model leaves clicks for more objects, which is how masks per image grow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..evaluation import mask_iou, next_click
from . import rle, services
from .models import ImageStatus, MaskSource, User
from .prompts import ImageRef, check_region, make_prompt
from .segmenter import Segmenter
from .store import Project


@dataclass(frozen=True)
class AnnotatorConfig:
    iou_target: float = field(default=0.9, metadata={"help": "accept at this IoU"})
    max_clicks: int = field(default=20, metadata={"help": "accept anyway after this many"})
    click_budget: int = field(default=0, metadata={
        "help": "clicks per image at most (0: label every object)"})
    seconds_per_click: float = field(default=2.0, metadata={
        "help": "human seconds credited per click (model time is measured and added)"})
    pick_best: bool = field(default=True, metadata={
        "help": "keep the candidate closest to the object (else the top-scored one)"})
    order: str = field(default="random", metadata={
        "help": "which objects first: 'random' (seeded by image id) or 'largest'"})
    brush_fix: bool = field(default=True, metadata={
        "help": "after max_clicks below iou_target, finish with the brush/eraser: the saved "
                "mask is the ground truth (else the model's last mask is saved as it is)"})
    brush_seconds: float = field(default=15.0, metadata={
        "help": "human seconds credited for a brush fix"})

    def __post_init__(self) -> None:
        if self.order not in ("random", "largest"):
            raise ValueError(f"order must be 'random' or 'largest', got {self.order!r}")
        if not 0 < self.iou_target <= 1:
            raise ValueError(f"iou_target must be in (0, 1], got {self.iou_target}")
        if self.max_clicks < 1 or self.click_budget < 0 or min(self.seconds_per_click,
                                                                 self.brush_seconds) < 0:
            raise ValueError("max_clicks must be >= 1, click_budget and seconds_per_click >= 0")


@dataclass(frozen=True)
class ObjectResult:
    clicks: int
    iou: float
    seconds: float
    mask_id: int | None  # None: not saved (the image's click budget ran out)


@dataclass(frozen=True)
class ImageResult:
    image_id: int
    objects: list[ObjectResult]

    @property
    def saved(self) -> list[ObjectResult]:
        return [o for o in self.objects if o.mask_id is not None]


class SimulatedAnnotator:
    """Labels images of `project` with `segmenter` (the served model) as user `user_name`."""

    def __init__(self, project: Project, segmenter: Segmenter, user_name: str,
                 cfg: AnnotatorConfig | None = None) -> None:
        self.project = project
        self.segmenter = segmenter
        self.user_name = user_name
        self.cfg = cfg or AnnotatorConfig()

    def _user(self, s) -> User:  # noqa: ANN001
        from sqlalchemy import select

        user = s.scalar(select(User).where(User.name == self.user_name))
        if user is None:
            raise ValueError(f"user {self.user_name!r} does not exist in the project")
        return user

    def _label(self, ref: ImageRef, gt: np.ndarray, budget: int) -> tuple[np.ndarray, int,
                                                                          float, list, float]:
        """Click on one object -> (mask H x W bool, clicks, IoU, events, model seconds)."""
        cfg = self.cfg
        seg = self.segmenter
        pred = np.zeros_like(gt)
        points: list[tuple[float, float, int]] = []
        low_res: bytes | None = None
        # As the page: the crop the model is asked on (the focus pass's, once it chose one),
        # dropped when a click falls outside; the logits made on it are kept, sent with the
        # frame they were made in (mask_region).
        region: tuple[int, int, int, int] | None = None
        low_res_frame: tuple[int, int, int, int] | None = None
        events: list[dict] = []
        model_s, iou = 0.0, 0.0
        for n in range(min(cfg.max_clicks, budget)):
            click = next_click(gt, pred)
            if click is None:
                break
            x, y, label = click
            if region is not None and not (region[0] <= x <= region[2]
                                           and region[1] <= y <= region[3]):
                region = None
            points.append((float(x), float(y), int(label)))
            events.append({"t": round(n * cfg.seconds_per_click + model_s, 3), "type": "point",
                           "x": x, "y": y, "label": label})
            prompt = make_prompt(ref, points=points, box=None, mask_input=low_res,
                                 low_res_size=seg.low_res_size, multimask=n == 0)
            t0 = time.perf_counter()
            cands = seg.predict(ref, prompt, check_region(ref, region, prompt),
                                mask_region=low_res_frame if low_res else None)
            masks = np.stack([rle.decode(c.counts, ref.height, ref.width) for c in cands])
            model_s += time.perf_counter() - t0
            ious = mask_iou(masks, gt[None])
            pick = int(ious.argmax()) if cfg.pick_best else 0  # candidates come best-scored first
            pred, iou = masks[pick], float(ious[pick])
            low_res = cands[pick].low_res.astype("<f2").tobytes()
            low_res_frame = cands[pick].region or (0, 0, ref.width, ref.height)
            new = cands[pick].region
            if region is None and new is not None and all(
                    new[0] <= px <= new[2] and new[1] <= py <= new[3] for px, py, _ in points):
                region = new  # as the page: only a crop that holds every click so far
            if iou >= cfg.iou_target:
                break
        return pred, len(points), iou, events, model_s

    def annotate(self, image_id: int, gt_masks: np.ndarray) -> ImageResult:
        """Label image `image_id` from its ground truth (K x H x W bool, original frame),
        save each accepted mask, and mark the image done."""
        cfg = self.cfg
        with self.project.session() as s:
            image = services.get_image(s, image_id=image_id)
            ref = ImageRef(id=image.id, path=self.project.image_path(image),
                           sha256=image.sha256, height=image.height, width=image.width)
        if gt_masks.shape[1:] != (ref.height, ref.width):
            raise ValueError(f"ground truth is {gt_masks.shape[1:]}, image {image_id} is "
                             f"{(ref.height, ref.width)}")
        if cfg.order == "largest":
            order = np.argsort(-gt_masks.reshape(len(gt_masks), -1).sum(1), kind="stable")
        else:
            order = np.random.default_rng(image_id).permutation(len(gt_masks))
        budget = cfg.click_budget or cfg.max_clicks * max(len(gt_masks), 1)
        objects = []
        for k in order:
            if budget <= 0:
                break
            pred, clicks, iou, events, model_s = self._label(ref, gt_masks[k], budget)
            budget -= clicks
            seconds = clicks * cfg.seconds_per_click + model_s
            finished = iou >= cfg.iou_target or clicks >= cfg.max_clicks
            if finished and iou < cfg.iou_target and cfg.brush_fix:
                # What a person does in the page when clicks stop helping: paint the rest.
                pred = gt_masks[k]
                seconds += cfg.brush_seconds
                events.append({"t": round(seconds, 3), "type": "brush", "fix": True})
            mask_id = None
            if finished and pred.any():
                with self.project.session() as s:
                    mask = services.create_mask(
                        s, image_id=image_id, counts=rle.encode(pred).counts,
                        author=self._user(s), source=MaskSource.manual,
                        model_version_id=self.segmenter.model_version_id,
                        interaction=services.InteractionData(
                            events=events, n_clicks=clicks, seconds=round(seconds, 3)))
                    mask_id = mask.id
            objects.append(ObjectResult(clicks=clicks, iou=iou, seconds=seconds,
                                        mask_id=mask_id))
        with self.project.session() as s:
            services.set_image_status(s, image_id=image_id, status=ImageStatus.done)
        return ImageResult(image_id=image_id, objects=objects)


# -- stage 2: a person deciding on pre-filled masks ---------------------------------------------
@dataclass(frozen=True)
class PrefillReview:
    """What the simulated annotator did with an image's pre-filled masks: the IoU of each
    proposal with its closest true object, the confirmed and rejected mask ids, and which
    true objects the confirmed ones cover (the rest are still to label)."""

    ious: list[float]
    confirmed: list[int]
    rejected: list[int]
    covered: list[int]  # indices into the ground truth

    @property
    def decisions(self) -> int:
        return len(self.confirmed) + len(self.rejected)


def review_prefills(project: Project, image_id: int, gt_masks: np.ndarray, user_name: str, *,
                    iou_target: float = 0.75, seconds_per_decision: float = 1.0
                    ) -> PrefillReview:
    """Confirm each proposed pre-fill of the image whose IoU with a true object (one not
    covered by an earlier confirmed mask, best matches first) is at least `iou_target`,
    reject the others; each decision is one click and `seconds_per_decision` seconds,
    through `services.decide_prefill` as the page's C and X keys do."""
    from sqlalchemy import select

    from .models import Mask, PrefillState

    with project.session() as s:
        props = [(m.id, m.version, rle.decode(m.rle_counts, m.image.height, m.image.width))
                 for m in s.scalars(select(Mask).where(
                     Mask.image_id == image_id, Mask.deleted_at.is_(None),
                     Mask.prefill_state == PrefillState.proposed.value).order_by(Mask.id))]
    if not props:
        return PrefillReview([], [], [], [])
    ious = (mask_iou(np.stack([p[2] for p in props])[:, None], gt_masks[None])
            if len(gt_masks) else np.zeros((len(props), 0)))
    best = [float(row.max()) if row.size else 0.0 for row in ious]
    taken: set[int] = set()
    confirmed, rejected = [], []
    pairs = sorted(((ious[i, j], i, j) for i in range(len(props))
                    for j in range(ious.shape[1])), reverse=True)
    match: dict[int, int] = {}
    for v, i, j in pairs:
        if v >= iou_target and i not in match and j not in taken:
            match[i] = j
            taken.add(j)
    with project.session() as s:
        user = s.scalar(select(User).where(User.name == user_name))
        if user is None:
            raise ValueError(f"user {user_name!r} does not exist in the project")
        for i, (mask_id, version, _m) in enumerate(props):
            decision = "confirm" if i in match else "reject"
            services.decide_prefill(s, mask_id=mask_id, expected_version=version, user=user,
                                    decision=decision, interaction=services.InteractionData(
                                        events=[], n_clicks=1, seconds=seconds_per_decision))
            (confirmed if i in match else rejected).append(mask_id)
    return PrefillReview(best, confirmed, rejected, sorted(taken))


# -- a project of synthetic scenes, for tests and the data-engine benchmark -------------------
@dataclass(frozen=True)
class SyntheticProject:
    project: Project
    admin_token: str
    train_ids: list[int]
    val_ids: list[int]
    ground_truth: dict[int, np.ndarray]  # image id -> K x H x W bool


def make_synthetic_project(root, train: list, val: list,  # noqa: ANN001
                           annotator: str = "simulated") -> SyntheticProject:
    """Write `train` and `val` samples (`Sample`s) as PNG files under root/images, create
    the project root/project with them in those splits, add the user `annotator`, and
    store the validation samples' masks as accepted masks (made by no model version, so no
    round's statistics count them)."""
    from pathlib import Path

    from PIL import Image as PILImage
    from sqlalchemy import select

    from .models import Image
    from .store import init_project

    root = Path(root)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=False)
    names: dict[str, tuple[str, object]] = {}
    for split, samples in (("train", train), ("val", val)):
        for k, sample in enumerate(samples):
            name = f"{split}_{k:04d}.png"
            PILImage.fromarray(sample.image).save(images / name)
            names[name] = (split, sample)
    project, token = init_project(root / "project", images, val_fraction=0.0)
    project.add_user(annotator)
    ids: dict[str, list[int]] = {"train": [], "val": []}
    gt: dict[int, np.ndarray] = {}
    with project.session() as s:
        admin = s.scalar(select(User).where(User.name == "admin"))
        for image in s.scalars(select(Image).order_by(Image.path)):
            split, sample = names[image.path]
            services.set_image_split(s, image_id=image.id, split=split)
            ids[split].append(image.id)
            gt[image.id] = sample.masks
            if split == "val":
                for m in sample.masks:
                    services.create_mask(s, image_id=image.id, counts=rle.encode(m).counts,
                                         author=admin)
    return SyntheticProject(project, token, ids["train"], ids["val"], gt)
