"""Images: the queue, one image's record and file, its embedding, and predictions on it."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import FileResponse

from ...engine import services
from ...engine.categories import check_category
from ...engine.prompts import check_mask_region, check_region, make_prompt
from .. import shapes
from ..convert import candidate_public, image_public
from ..deps import ImageId, SessionDep, StateDep, UserDep
from ..schemas import (
    MAX_INT,
    EmbeddingOut,
    ImagePage,
    ImagePublic,
    PredictIn,
    PredictOut,
    RenderIn,
    RenderOut,
    StatusIn,
)

router = APIRouter(prefix="/images", tags=["images"])


@router.get("", response_model=ImagePage)
def list_images(
    session: SessionDep, _user: UserDep,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    filter: Annotated[Literal["all", "todo", "done", "review"], Query(
        description="todo / done by status; review: with masks waiting for review")] = "all",
    category: Annotated[int | None, Query(
        ge=1, le=MAX_INT, description="only images with a mask of this class")] = None,
) -> ImagePage:
    """Images in queue order with their mask counts; `total` counts the filter's images."""
    check_category(session, category, ("query", "category"))
    rows = services.list_images(session, offset=offset, limit=limit, which=filter,
                                category_id=category)
    return ImagePage(total=services.count_images(session, filter, category),
                     images=[image_public(im, n, pending) for im, n, pending in rows])


@router.get("/next", response_model=ImagePublic)
def next_image(
    session: SessionDep, _user: UserDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None, backwards: bool = False,
    todo_only: bool = True,
) -> ImagePublic:
    """The next (or, with backwards, the previous) image to annotate after `after`."""
    image = services.neighbor_image(session, after=after, backwards=backwards,
                                    todo_only=todo_only)
    if image is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no image left to annotate")
    return image_public(image)


@router.get("/{image_id}", response_model=ImagePublic)
def get_image(
    image_id: ImageId, state: StateDep, session: SessionDep, _user: UserDep
) -> ImagePublic:
    """An image's record. Opening an image starts computing, in the background, the
    embeddings of this image and of the next ones in the queue."""
    image = services.get_image(session, image_id=image_id)
    ahead = services.upcoming_images(session, after=image.id, n=state.settings.prefetch)
    state.segmenter.prefetch([state.image_ref(im) for im in [image, *ahead]])
    out = image_public(image)
    out.position = services.image_position(session, image.id)
    out.total = services.count_images(session)
    return out


@router.get("/{image_id}/file", response_class=FileResponse)
def image_file(image_id: ImageId, state: StateDep, session: SessionDep, _user: UserDep):
    image = services.get_image(session, image_id=image_id)
    path = state.project.image_path(image)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"file of image {image_id} is missing")
    return FileResponse(path)


@router.put("/{image_id}/status", response_model=ImagePublic)
def set_status(
    image_id: ImageId, body: StatusIn, session: SessionDep, _user: UserDep
) -> ImagePublic:
    return image_public(services.set_image_status(session, image_id=image_id, status=body.status))


@router.post("/{image_id}/embedding", response_model=EmbeddingOut)
def prepare_embedding(
    image_id: ImageId, state: StateDep, session: SessionDep, _user: UserDep
) -> EmbeddingOut:
    """Compute (or load) the image's embedding now; answers when it is ready."""
    image = services.get_image(session, image_id=image_id)
    seg = state.segmenter
    seg.embedding(state.image_ref(image))
    return EmbeddingOut(image_id=image.id, model_version_id=seg.model_version_id, ready=True)


@router.post("/{image_id}/predict", response_model=PredictOut)
def predict(
    image_id: ImageId, body: PredictIn, state: StateDep, session: SessionDep, _user: UserDep
) -> PredictOut:
    """Points, a box and/or the previous mask's logits -> candidate masks, best first."""
    image = services.get_image(session, image_id=image_id)
    ref = state.image_ref(image)
    seg = state.segmenter  # one reference for the whole request, even if the model changes
    prompt = make_prompt(
        ref, points=[(p.x, p.y, p.label) for p in body.points], box=body.box,
        mask_input=None if body.mask_input is None else base64.b64decode(body.mask_input),
        low_res_size=seg.low_res_size, multimask=body.multimask,
    )
    region = check_region(ref, body.region, prompt)
    mask_region = check_mask_region(ref, body.mask_region)
    display = None if body.display is None else shapes.display_of(body.display, image,
                                                                  ("body",))
    cands = seg.predict(ref, prompt, region, display, mask_region)
    view, region = cands[0].view, cands[0].region  # the focus pass may have chosen a crop
    return PredictOut(image_id=image.id, size=[image.height, image.width],
                      model_version_id=seg.model_version_id, low_res_size=seg.low_res_size,
                      region=None if region is None else list(region),
                      mask_box=None if view is None else list(view.box),
                      mask_size=None if view is None else list(view.size),
                      candidates=[candidate_public(c) for c in cands])


@router.post("/{image_id}/render", response_model=RenderOut)
def render(
    image_id: ImageId, body: RenderIn, state: StateDep, session: SessionDep, _user: UserDep
) -> RenderOut:
    """A candidate's logits drawn again for what the screen shows now (after a zoom or a
    pan): no decoder, only the upsampling of the part on screen."""
    image = services.get_image(session, image_id=image_id)
    lg = shapes.logits(state, session, image, low_res=body.low_res, region=body.region,
                       version_id=body.model_version_id, field=("body",))
    return shapes.render(state, image, lg, shapes.display_of(body.display, image, ("body",)))
