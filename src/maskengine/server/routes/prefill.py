"""Stage 2 (semi-automatic): pre-filling for admins, and every annotator's decision on a
pre-filled mask (confirm, edit, reject)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request, status

from ...engine import services
from ...engine.detectors import current_detector
from ...engine.prefill import prefill_stats
from ...engine.services import InteractionData
from .. import shapes
from ..convert import mask_public
from ..deps import MaskId, SessionDep, StateDep, UserDep
from ..prefill_runner import PrefillBusy, PrefillRunner
from ..schemas import MaskPublic
from ..schemas_engine import DecisionIn, DetectorPublic, PrefillIn, PrefillOut

router = APIRouter(tags=["prefill"])


def _runner(request: Request) -> PrefillRunner:
    return request.app.state.prefill


def _out(runner: PrefillRunner, state: StateDep, session: SessionDep) -> PrefillOut:
    st = runner.state()
    dv = current_detector(session, state.segmenter.model_version_id)
    detector = None
    if dv is not None:
        val = json.loads(dv.metrics_json).get("val", {})
        detector = DetectorPublic(id=dv.id, name=dv.name, model_version_id=dv.model_version_id,
                                  ap50=val.get("ap50"), recall50=val.get("recall50"))
    return PrefillOut(running=st.running, phase=st.phase, started_at=st.started_at,
                      finished_at=st.finished_at, done=st.done, total=st.total, last=st.last,
                      error=st.error, detector=detector, stats=prefill_stats(session))


@router.get("/prefill", response_model=PrefillOut)
def get_prefill(request: Request, state: StateDep, session: SessionDep,
                _user: UserDep) -> PrefillOut:
    """The served model's detector, pre-filled masks by state, people's decisions (count,
    seconds), and the pre-fill running in this server (images done of total)."""
    return _out(_runner(request), state, session)


@router.post("/prefill", response_model=PrefillOut, status_code=status.HTTP_202_ACCEPTED,
             responses={403: {"description": "not an admin"},
                        409: {"description": "a pre-fill is running already"}})
def start_prefill(request: Request, state: StateDep, session: SessionDep, user: UserDep,
                  body: Annotated[PrefillIn | None, Body()] = None) -> PrefillOut:
    """Pre-fill (admins) the images given, or every image of the train split not marked
    done, with the served model; a detector is trained first when the served model has
    none. Answers at once; GET /api/prefill shows progress and the result."""
    services.require_admin(user)
    runner = _runner(request)
    try:
        runner.start(user=user.name, images=None if body is None else body.images)
    except PrefillBusy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return _out(runner, state, session)


@router.post("/masks/{mask_id}/prefill", response_model=MaskPublic,
             responses={409: {"description": "decided already, or a stale version"}})
def decide(mask_id: MaskId, body: DecisionIn, state: StateDep, session: SessionDep,
           user: UserDep) -> MaskPublic:
    """Confirm, edit (with the new counts, or the `shape` for the server to make) or reject
    a proposed pre-filled mask, with the seconds (and clicks) it took; any annotator may
    decide."""
    counts = body.counts
    if body.shape is not None:
        old = services.get_mask(session, mask_id=mask_id)
        counts = shapes.shape_mask(state, session, old.image, body.shape, base=old.rle_counts)
    inter = None if body.interaction is None else InteractionData(
        events=[e.model_dump(exclude_none=True) for e in body.interaction.events],
        n_clicks=body.interaction.n_clicks, seconds=body.interaction.seconds)
    return mask_public(services.decide_prefill(
        session, mask_id=mask_id, expected_version=body.version, user=user,
        decision=body.decision, counts=counts, interaction=inter))
