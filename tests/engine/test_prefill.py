"""Stage 2 in the engine: a detector trained on a project's accepted masks, pre-filled
masks with their provenance, people's decisions, and what rounds, exports and the detector
then see. A real store, the bundled tiny model, a detector trained in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from maskengine.engine import rle, services
from maskengine.engine.detectors import (
    DetectorError,
    current_detector,
    labelled_images,
    train_detector,
)
from maskengine.engine.errors import Conflict, InvalidField
from maskengine.engine.export import current_rows
from maskengine.engine.models import (
    DetectorVersion,
    Interaction,
    Mask,
    MaskChange,
    PrefilledImage,
    PrefillState,
    User,
)
from maskengine.engine.prefill import prefill_project, prefill_stats
from maskengine.engine.project_dataset import ProjectDataset
from maskengine.quality.queue import review_queue

from .stage2_helpers import FAST_DETECTOR, OPEN, served_segmenter, stage2_project


def _user(project, name: str) -> User:  # noqa: ANN001
    with project.session() as s:
        return s.scalar(select(User).where(User.name == name))


def test_detector_needs_masks_and_prefill_needs_a_detector(tmp_path: Path) -> None:
    st = stage2_project(tmp_path, n_labelled=0, n_todo=2)
    seg = served_segmenter(st)
    try:
        with pytest.raises(DetectorError, match="no detector for the served model version"):
            prefill_project(st.sp.project, seg, OPEN)
        with pytest.raises(DetectorError, match="no accepted masks on train-split images"):
            train_detector(st.sp.project, FAST_DETECTOR, segmenter=seg, log=lambda _m: None)
    finally:
        seg.close()


@pytest.mark.slow
def test_prefill_provenance_idempotence_and_decisions(tmp_path: Path) -> None:
    st = stage2_project(tmp_path)
    project = st.sp.project
    seg = served_segmenter(st)
    try:
        lines: list[str] = []
        res = train_detector(project, FAST_DETECTOR, segmenter=seg, log=lines.append)
        val = res.metrics["val"]  # measured on the validation image's accepted masks
        assert val["images"] == 1 and val["boxes"] == len(st.sp.ground_truth[st.sp.val_ids[0]])
        assert 0.0 <= val["ap50"] <= 1.0 and 0.0 <= val["recall50"] <= 1.0
        assert res.metrics["train"]["boxes"] == sum(
            len(st.sp.ground_truth[i]) for i in st.labelled)
        with project.session() as s:
            dv = current_detector(s, seg.model_version_id)
            assert dv.id == res.detector_id and (project.root / dv.weights).is_file()

        # Resumable: a run stopped after its first image keeps that image, the next run
        # does the rest; a third run finds nothing left (idempotent).
        def stop(done: int, _total: int) -> None:
            if done == 1:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            prefill_project(project, seg, OPEN, on_image=stop)
        second = prefill_project(project, seg, OPEN)
        assert (second.images, second.skipped) == (1, 1)
        third = prefill_project(project, seg, OPEN)
        assert (third.images, third.skipped, third.proposed) == (0, 2, 0)
        with project.session() as s:
            done = list(s.scalars(select(PrefilledImage)))
            assert sorted(p.image_id for p in done) == st.todo  # the labelled ones: untouched
            masks = list(s.scalars(select(Mask).where(Mask.source == "prefill")))
            assert len(masks) == sum(p.proposed for p in done) > 0
            for m in masks:
                meta = json.loads(m.meta_json)
                assert m.prefill_state == PrefillState.proposed.value and m.author_id is None
                assert m.model_version_id == seg.model_version_id
                assert m.predicted_iou is not None and m.stability_score is not None
                assert meta["detector_version_id"] == res.detector_id
                assert 0.0 <= meta["detector_score"] <= 1.0 and len(meta["box"]) == 4
                assert m.image_id in st.todo
            ids = [m.id for m in masks]

        # Proposed masks are not accepted masks: no training, export or review for them.
        assert len(ProjectDataset(project, "train")) == len(st.labelled)
        exported = {im.id: len(ms) for im, ms in current_rows(project)}
        assert all(exported[i] == 0 for i in st.todo)
        with project.session() as s:
            assert not {q.mask_id for q in review_queue(s, {}).items} & set(ids)

        # Decisions, by an annotator who made none of them.
        ann = _user(project, "simulated")
        with project.session() as s:
            m0, m1, m2 = (s.get(Mask, i) for i in ids[:3])
            other = rle.encode(np.roll(rle.decode(m1.rle_counts, 96, 128), 3, axis=1)).counts
            services.decide_prefill(s, mask_id=m0.id, expected_version=m0.version, user=ann,
                                    decision="confirm",
                                    interaction=services.InteractionData(n_clicks=1,
                                                                         seconds=1.5))
            services.decide_prefill(s, mask_id=m1.id, expected_version=m1.version, user=ann,
                                    decision="edit", counts=other,
                                    interaction=services.InteractionData(n_clicks=3,
                                                                         seconds=6.0))
            services.decide_prefill(s, mask_id=m2.id, expected_version=m2.version, user=ann,
                                    decision="reject",
                                    interaction=services.InteractionData(n_clicks=1,
                                                                         seconds=2.0))
        with project.session() as s:
            m0, m1, m2 = (s.get(Mask, i) for i in ids[:3])
            assert (m0.prefill_state, m0.author_id, m0.deleted_at) == ("confirmed", ann.id, None)
            assert m1.prefill_state == "edited" and m1.rle_counts == other
            assert m2.prefill_state == "rejected" and m2.deleted_at is not None
            kinds = [(i.kind, i.seconds) for i in s.scalars(
                select(Interaction).where(Interaction.mask_id.in_(ids[:3]))
                .order_by(Interaction.mask_id, Interaction.id))]
            assert kinds == [("confirm", 1.5), ("edit", 6.0), ("reject", 2.0)]
            changes = [c.detail for c in s.scalars(select(MaskChange).where(
                MaskChange.mask_id == m2.id).order_by(MaskChange.id))]
            assert changes == ["prefill", "reject"]
            stats = prefill_stats(s)
            assert stats["masks"]["confirmed"] == 1 and stats["masks"]["edited"] == 1
            assert stats["masks"]["rejected"] == 1
            assert stats["decisions"]["edit"] == {"count": 1, "seconds": 6.0}
            # A second decision on the same mask loses: it is decided already.
            with pytest.raises(Conflict, match="is confirmed"):
                services.decide_prefill(s, mask_id=m0.id, expected_version=m0.version,
                                        user=ann, decision="reject")
            with pytest.raises(InvalidField, match="needs the new counts"):
                services.decide_prefill(s, mask_id=ids[3], expected_version=1, user=ann,
                                        decision="edit")

        # Confirmed and edited masks train the next round and are exported; the rejected one
        # is the detector's negative on its image.
        trained = ProjectDataset(project, "train")
        assert trained.num_masks == sum(len(st.sp.ground_truth[i]) for i in st.labelled) + 2
        by_id = {it.ref.id: it for it in labelled_images(project, "train")}
        with project.session() as s:
            rejected = s.get(Mask, ids[2])
            assert by_id[rejected.image_id].negatives == [
                (rejected.bbox_x, rejected.bbox_y, rejected.bbox_w, rejected.bbox_h)]

        # A new detector pre-fills again, but never repeats a mask the image has (live or
        # rejected): with existing_iou 0 no proposal may touch one.
        res2 = train_detector(project, FAST_DETECTOR, segmenter=seg, log=lambda _m: None)
        assert res2.metrics["train"]["negatives"] == 1
        before = {m: _live_masks(project, m) for m in st.todo}
        strict = OPEN.__class__(**{**OPEN.to_dict(), "existing_iou": 0.0})
        prefill_project(project, seg, strict, images=st.todo)
        for image_id in st.todo:
            new = _live_masks(project, image_id, newer_than=max(ids))
            old = before[image_id] + _rejected(project, image_id)
            for m in new:
                assert not any((m & o).any() for o in old)
        with project.session() as s:
            assert s.scalar(select(DetectorVersion.id).order_by(DetectorVersion.id.desc())
                            .limit(1)) == res2.detector_id
    finally:
        seg.close()


def _live_masks(project, image_id: int, newer_than: int = 0) -> list[np.ndarray]:  # noqa: ANN001
    with project.session() as s:
        return [rle.decode(m.rle_counts, m.image.height, m.image.width) for m in s.scalars(
            select(Mask).where(Mask.image_id == image_id, Mask.deleted_at.is_(None),
                               Mask.id > newer_than))]


def _rejected(project, image_id: int) -> list[np.ndarray]:  # noqa: ANN001
    with project.session() as s:
        return [rle.decode(m.rle_counts, m.image.height, m.image.width) for m in s.scalars(
            select(Mask).where(Mask.image_id == image_id,
                               Mask.prefill_state == PrefillState.rejected.value))]
