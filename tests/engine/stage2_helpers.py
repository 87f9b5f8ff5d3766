"""A small stage-2 project for the engine, server and browser tests: synthetic scenes,
the bundled tiny model served, some train images labelled with their true masks, a
detector trained in a few seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from maskengine.data import SceneConfig, generate_scene
from maskengine.detection import DetectorConfig
from maskengine.engine import rle, services
from maskengine.engine.detectors import version_segmenter
from maskengine.engine.models import ImageStatus, User
from maskengine.engine.prefill_config import PrefillConfig
from maskengine.engine.segmenter import ModelSpec, Segmenter, model_key
from maskengine.engine.simulate import SyntheticProject, make_synthetic_project
from maskengine.engine.versions import promote, register_model_version

SCENES = SceneConfig(height=96, width=128, min_objects=2, max_objects=4, min_size=0.2)
FAST_DETECTOR = DetectorConfig(hidden=16, layers=1, steps=30, batch_size=2)
# Filters off: every detection's mask is proposed (the tests check the bookkeeping; the
# benchmark measures the filters).
OPEN = PrefillConfig(min_detector_score=0.0, min_predicted_iou=0.0, min_stability=0.0,
                     max_masks=3)


@dataclass
class Stage2:
    sp: SyntheticProject
    labelled: list[int]  # train images labelled with their true masks, marked done
    todo: list[int]  # train images left to pre-fill


def stage2_project(tmp: Path, n_labelled: int = 3, n_todo: int = 2) -> Stage2:
    scenes = [generate_scene(SCENES, 21, i) for i in range(n_labelled + n_todo)]
    sp = make_synthetic_project(tmp, scenes, [generate_scene(SCENES, 22, 0)])
    spec = ModelSpec("tiny")
    model = spec.load()
    key, wsha = model_key(model.config, spec.weights_file())
    with sp.project.session() as s:
        mv = register_model_version(
            s, key=key, name="tiny", config=model.config.to_dict(),
            checkpoint=spec.weights_file(), checkpoint_sha256=wsha)
        promote(s, mv, note="starting model")
        admin = s.scalar(select(User).where(User.name == "admin"))
        labelled = sp.train_ids[:n_labelled]
        for i in labelled:
            for m in sp.ground_truth[i]:
                services.create_mask(s, image_id=i, counts=rle.encode(m).counts,
                                     author=admin, model_version_id=mv.id)
            services.set_image_status(s, image_id=i, status=ImageStatus.done)
    return Stage2(sp, labelled, sp.train_ids[n_labelled:])


def served_segmenter(st: Stage2) -> Segmenter:
    from maskengine.engine.versions import served_version

    with st.sp.project.session() as s:
        mv_id = served_version(s).id
    return version_segmenter(st.sp.project, mv_id)
