"""Typed dependencies of the routes: the app's state, a database session, the user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ..engine import services
from ..engine.models import Image, User
from ..engine.segmenter import ImageRef, Segmenter
from ..engine.store import Project
from .schemas import MAX_INT
from .settings import ServerSettings


@dataclass
class AppState:
    """Everything the lifespan hook builds. `segmenter` is one model version; swapping in a
    retrained one is replacing this reference (requests hold their own reference), and the
    one replaced is kept in `retired` until shutdown so requests under way can finish."""

    project: Project
    settings: ServerSettings
    segmenter: Segmenter
    retired: list[Segmenter] = field(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.segmenter.name

    @property
    def model_round(self) -> int:
        return self.segmenter.round

    def switch_to(self, segmenter: Segmenter) -> None:
        """Serve `segmenter` from now on. The replaced version's embeddings stay on disk
        until `settings.keep_versions` newer versions have been served; then they are
        deleted."""
        old, self.segmenter = self.segmenter, segmenter
        old.cache.drop_memory()
        self.retired.append(old)
        while len(self.retired) >= self.settings.keep_versions:
            gone = self.retired.pop(0)
            gone.close()
            gone.cache.remove_files()

    def close(self) -> None:
        for seg in [self.segmenter, *self.retired]:
            seg.close()
        self.project.close()

    def image_ref(self, image: Image) -> ImageRef:
        return ImageRef(id=image.id, path=self.project.image_path(image), sha256=image.sha256,
                        height=image.height, width=image.width)


def get_state(request: Request) -> AppState:
    return request.app.state.app_state


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent (scope
    "function"), so a client that saw 201 for an accepted mask finds it after a crash."""
    with state.project.new_session() as s:
        yield s
        s.commit()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="the API token of a project user")


def current_user(
    session: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    user = services.user_by_token(session, token=creds.credentials)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


UserDep = Annotated[User, Depends(current_user)]

# Ids in paths fit the INTEGER column they are looked up in (32-bit on PostgreSQL).
ImageId = Annotated[int, Path(ge=1, le=MAX_INT, description="an image's id")]
MaskId = Annotated[int, Path(ge=1, le=MAX_INT, description="a mask's id")]
