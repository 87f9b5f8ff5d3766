"""Switching the served model: embeddings of retired versions are evicted from disk once
`keep_versions` newer ones have been served."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from maskengine.engine.models import Image
from maskengine.engine.segmenter import Segmenter
from maskengine.engine.versions import promote, register_model_version
from maskengine.server.app import load_state
from maskengine.server.settings import ServerSettings

from .conftest import make_project


def test_switching_keeps_the_newest_versions_embeddings_and_evicts_older(
    tmp_path: Path,
) -> None:
    info = make_project(tmp_path)
    state = load_state(info.root, ServerSettings(model="tiny", keep_versions=2, threads=1))
    try:
        with state.project.session() as s:
            image = s.scalar(select(Image).order_by(Image.id))
        ref = state.image_ref(image)
        root = state.project.cache_dir / "embeddings"
        seen = [state.segmenter.model_version_id]
        state.segmenter.embedding(ref)
        model = state.segmenter.model
        for k in range(2):
            with state.project.session() as s:
                mv = register_model_version(s, key=f"test-{k}", name=f"v{k}", config={},
                                            checkpoint=None, checkpoint_sha256=None)
                promote(s, mv)
                mv_id = mv.id
            state.switch_to(Segmenter(model, mv_id, root, name=f"v{k}", round=k + 1))
            state.segmenter.embedding(ref)
            seen.append(mv_id)
            assert state.model_round == k + 1
            # the served version and the one before it keep their files; older ones go
            kept = {int(p.name[1:]) for p in root.iterdir() if any(p.iterdir())}
            assert kept == set(seen[-2:]), (kept, seen)
        assert len(state.retired) == 1
    finally:
        state.close()
