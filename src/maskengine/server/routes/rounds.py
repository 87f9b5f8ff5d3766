"""Model-in-the-loop rounds: the per-round table for everyone, starting and cancelling a round
for admins."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request, status

from ...engine import services
from ...engine.errors import InvalidField
from ...engine.round_stats import round_stats
from ..deps import SessionDep, UserDep
from ..round_runner import NoRound, RoundBusy, RoundRunner
from ..schemas_engine import RoundIn, RoundLast, RoundProgress, RoundRow, RoundsOut

router = APIRouter(prefix="/rounds", tags=["rounds"])


def _runner(request: Request) -> RoundRunner:
    return request.app.state.rounds


def _state(runner: RoundRunner, session: SessionDep) -> RoundsOut:
    st = runner.state()
    t = runner.template.training
    return RoundsOut(
        rows=[RoundRow(**r.to_dict()) for r in round_stats(session)],
        running=st.running, started_at=st.started_at, finished_at=st.finished_at,
        last=None if st.last is None else RoundLast(**dataclasses.asdict(st.last)),
        error=st.error, log=list(st.log), defaults={"steps": t.steps, "lr": t.lr},
        phase=st.phase, cancelled=st.cancelled,
        progress=None if st.progress is None else RoundProgress(**dataclasses.asdict(st.progress)),
    )


@router.get("", response_model=RoundsOut)
def get_rounds(request: Request, session: SessionDep, _user: UserDep) -> RoundsOut:
    """Per model version: masks accepted, seconds and clicks per mask, masks per image,
    validation mIoU@1 / NoC@90; and whether a round is running in this server."""
    return _state(_runner(request), session)


@router.post("", response_model=RoundsOut, status_code=status.HTTP_202_ACCEPTED,
             responses={403: {"description": "not an admin"},
                        409: {"description": "a round is running already"}})
def start_round(
    request: Request, session: SessionDep, user: UserDep,
    body: Annotated[RoundIn | None, Body()] = None,
) -> RoundsOut:
    """Start one round (admins): fine-tune the served model on the accepted masks, validate,
    register, promote unless worse; the server switches to a promoted model by itself.
    Answers at once; GET /api/rounds shows progress, the result or the error."""
    services.require_admin(user)
    runner = _runner(request)
    overrides = {} if body is None else body.model_dump(exclude_none=True)
    force = bool(overrides.pop("force", False))
    try:
        runner.start(overrides, force=force)
    except RoundBusy as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ValueError as exc:  # a value TrainingConfig refuses with the others
        raise InvalidField(("body",), str(exc)) from exc
    return _state(runner, session)


@router.delete("", response_model=RoundsOut, status_code=status.HTTP_202_ACCEPTED,
               responses={403: {"description": "not an admin"},
                          409: {"description": "no round is running in this server"}})
def cancel_round(request: Request, session: SessionDep, user: UserDep) -> RoundsOut:
    """Cancel the running round (admins): it stops at its next training step (or before
    validation or registering), registers nothing, and keeps its run folder, so the next
    round resumes where this one stopped. Answers at once with phase "cancelling";
    GET /api/rounds shows `cancelled` once it has stopped."""
    services.require_admin(user)
    runner = _runner(request)
    try:
        runner.cancel()
    except NoRound as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return _state(runner, session)
