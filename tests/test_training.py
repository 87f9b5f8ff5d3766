"""A short training run on synthetic scenes: the loss falls, checkpoints load, runs resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from maskengine import SamConfig, create_model
from maskengine.data import SyntheticDataset
from maskengine.modeling.registry import MODEL_CONFIGS
from maskengine.training import StopTraining, Trainer, TrainingConfig, train
from maskengine.training.batch import make_batch
from maskengine.training.interaction import noisy_boxes, sample_points, schedule
from maskengine.training.losses import dice_loss, focal_loss, prompt_loss
from maskengine.training.trainer import lr_factor

# A model of the official structure at a size that trains in seconds (same code as tiny).
MICRO = SamConfig(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
                  encoder_global_attn_indexes=(1,), encoder_window_size=4, image_size=64,
                  patch_size=8, prompt_embed_dim=32, decoder_mlp_dim=64, iou_head_hidden_dim=32)
# Two scenes seen over and over: the loss must fall within a few steps.
RUN = dict(num_images=2, scene_size=64, batch_size=2, masks_per_image=3, points=1,
           mask_only=1, lr=5e-3, warmup_steps=0, checkpoint_every=2)


@pytest.fixture()
def micro(tmp_path):
    path = tmp_path / "micro.json"
    path.write_text(json.dumps(MICRO.to_dict()))
    return str(path)


def test_losses_are_zero_for_a_perfect_prediction_and_pick_the_best_mask():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    good = (target * 2 - 1) * 20
    assert float(focal_loss(good, target)) < 1e-6
    assert float(dice_loss(good, target)) < 1e-3
    logits = torch.stack([-good[0], good[0], torch.zeros(8, 8)])[None]  # 1 x 3 x 8 x 8
    res = prompt_loss(logits, torch.tensor([[0.0, 1.0, 0.5]]), target, 20.0, 1.0, 1.0)
    assert int(res.best[0]) == 1 and float(res.iou[0]) == 1.0


def test_focal_alpha_weighs_missed_foreground_against_spurious_background():
    target = torch.zeros(1, 8, 8)
    target[0, :4] = 1
    unsure = torch.zeros(1, 1, 8, 8)  # p = 0.5 everywhere: half the pixels wrong either way
    under = prompt_loss(unsure, torch.zeros(1, 1), target, 1.0, 0.0, 0.0)
    balanced = prompt_loss(unsure, torch.zeros(1, 1), target, 1.0, 0.0, 0.0, focal_alpha=0.5)
    # alpha 0.25 charges a missed foreground pixel a third of a spurious background one.
    assert under.focal == pytest.approx(balanced.focal)  # half/half: 0.25+0.75 = 0.5+0.5
    fg_only = torch.ones(1, 8, 8)
    a = prompt_loss(unsure, torch.zeros(1, 1), fg_only, 1.0, 0.0, 0.0)
    b = prompt_loss(unsure, torch.zeros(1, 1), fg_only, 1.0, 0.0, 0.0, focal_alpha=0.75)
    assert b.focal == pytest.approx(3 * a.focal)
    with pytest.raises(ValueError, match="focal_alpha"):
        TrainingConfig(focal_alpha=1.0)


def test_prompt_sampling_stays_in_the_region_and_boxes_stay_ordered():
    gen = torch.Generator().manual_seed(0)
    region = torch.zeros(5, 16, 16, dtype=torch.bool)
    region[:, 4:6, 10:12] = True
    pts = sample_points(region, 64, gen)  # loss grid 16 -> input frame 64 (4 px cells)
    assert ((pts[:, 0] >= 40 - 0.5) & (pts[:, 0] < 48 - 0.5)).all()
    assert ((pts[:, 1] >= 16 - 0.5) & (pts[:, 1] < 24 - 0.5)).all()
    boxes = noisy_boxes(torch.tensor([[10.0, 10, 50, 30]] * 100), 64, gen)
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert (boxes - torch.tensor([10.0, 10, 50, 30])).abs().max() <= 20
    plan = schedule(8, 2, gen)
    assert len(plan) == 10 and sum(plan) == 8 and plan[-1] is False


def test_lr_schedule_warms_up_then_steps_down_twice():
    cfg = TrainingConfig(steps=100, warmup_steps=10, first_decay=0.5, second_decay=0.8)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(20, cfg) == 1.0
    assert lr_factor(60, cfg) == pytest.approx(0.1)
    assert lr_factor(90, cfg) == pytest.approx(0.01)


def test_batch_targets_match_masks_in_the_input_frame():
    ds = SyntheticDataset(1, seed=5)
    model = create_model(dataclasses.replace(MODEL_CONFIGS["tiny"]))
    b = make_batch([ds[0]], image_size=256, loss_size=64, masks_per_image=4,
                   max_mask_fraction=0.9, preprocess=model.preprocess,
                   rng=np.random.default_rng(0))
    assert b.inputs.shape == (1, 3, 256, 256)
    assert b.targets.shape[1:] == (64, 64) and len(b.targets) == len(b.boxes) <= 4
    for t, box in zip(b.targets, b.boxes, strict=True):
        ys, xs = torch.nonzero(t > 0.5, as_tuple=True)
        # the box (input frame, 256) encloses the target (loss grid, 64 = 256 / 4)
        assert xs.min() * 4 >= box[0] - 4 and xs.max() * 4 <= box[2] + 4
        assert ys.min() * 4 >= box[1] - 4 and ys.max() * 4 <= box[3] + 4


def test_short_run_lowers_the_loss_and_saves_loadable_weights(tmp_path, micro):
    cfg = TrainingConfig(out=str(tmp_path / "run"), steps=8, model=micro, **RUN)
    path = train(cfg, progress=False)
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in logs] == list(range(1, 9))
    first = np.mean([r["loss"] for r in logs[:2]])
    last = np.mean([r["loss"] for r in logs[-2:]])
    assert last < 0.8 * first
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["training"]["steps"] == 8 and saved["model"]["image_size"] == 64
    # The weights are a plain state_dict in the official layout.
    sd = torch.load(path, weights_only=True)
    assert all(k.split(".")[0] in ("image_encoder", "prompt_encoder", "mask_decoder") for k in sd)
    model = create_model(MICRO, checkpoint=path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, sd[k])
    assert len(list((tmp_path / "run" / "checkpoints").glob("step_*.pt"))) == 3  # kept


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, micro):
    whole = Trainer(TrainingConfig(out=str(tmp_path / "whole"), steps=3, model=micro, **RUN))
    whole.run()
    # "Killed" after step 2: a new process picks up the saved state and finishes.
    Trainer(TrainingConfig(out=str(tmp_path / "cut"), steps=2, model=micro, **RUN)).run()
    with (tmp_path / "cut" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 3, "loss": 0.0}) + "\n")  # a line past the last save
    again = Trainer(TrainingConfig(out=str(tmp_path / "cut"), steps=3, model=micro, **RUN))
    assert again.resume_if_possible() and again.step == 2
    again.run()
    for k, v in whole.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[k], v, rtol=1e-4, atol=1e-5)
    steps = [json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").open()]
    assert steps == [1, 2, 3]


def test_stop_training_from_a_callback_saves_that_step_and_resumes_there(tmp_path, micro):
    cfg = TrainingConfig(out=str(tmp_path / "run"), steps=4, model=micro,
                         **{**RUN, "checkpoint_every": 100})

    def stop_at_3(step, _log):
        if step == 3:
            raise StopTraining

    with pytest.raises(StopTraining):
        Trainer(cfg).run(stop_at_3)
    again = Trainer(cfg)
    assert again.resume_if_possible() and again.step == 3  # not step 0: nothing redone
    again.run()
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4]


def test_frozen_encoder_trains_only_prompt_encoder_and_decoder(tmp_path):
    # The real tiny size here: one cheap decoder-only step shows the fast path works on it.
    cfg = TrainingConfig(out=str(tmp_path / "ft"), steps=1, freeze_image_encoder=True,
                         model="tiny", **{**RUN, "points": 0, "mask_only": 0})
    tr = Trainer(cfg)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.train_step()
    tr.train_step()  # second step reads the cached embeddings
    after = tr.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("image_encoder"))
    assert any(not torch.equal(before[k], after[k]) for k in before
               if k.startswith("mask_decoder"))
    assert len(tr._cache) >= 1


def test_focus_views_zoom_on_a_small_mask_as_the_focus_pass_would():
    from maskengine.data import SceneConfig, generate_scene
    from maskengine.focus import FocusConfig
    from maskengine.training.batch import _focus_view

    scene = generate_scene(SceneConfig(height=256, width=256, family="organic"), 5000, 0)
    image, masks = _focus_view(scene.image, scene.masks, np.random.default_rng(0))
    side = image.shape[0]
    assert image.shape == (side, side, 3) and 64 <= side < 256  # a square zoom, >= 1/4
    assert len(masks) and masks.shape[1:] == (side, side) and masks.any(axis=(1, 2)).all()
    # It is a crop of the scene: find it, and its masks are the scene's cut to it.
    hits = [(y, x) for y in range(0, 257 - side, 8) for x in range(0, 257 - side, 8)
            if np.array_equal(scene.image[y:y + side, x:x + side], image)]
    assert len(hits) == 1
    y, x = hits[0]
    cut = scene.masks[:, y:y + side, x:x + side]
    assert len(masks) == cut.any(axis=(1, 2)).sum()
    # A small mask of the scene lies wholly inside (the one the focus pass zooms on).
    assert FocusConfig().max_fraction * 256 >= min(
        max(np.ptp(np.nonzero(m)[0]), np.ptp(np.nonzero(m)[1])) + 1
        for m in scene.masks if m.any() and not m[:y].any() and not m[y + side:].any()
        and not m[:, :x].any() and not m[:, x + side:].any())
    # A scene without a small mask is left as it was.
    big = np.zeros((1, 256, 256), bool)
    big[20:200, 10:220] = True
    same_image, same_masks = _focus_view(scene.image, big, np.random.default_rng(0))
    assert same_image is scene.image and same_masks is big


def test_frozen_encoder_with_focus_views_caches_no_embedding(tmp_path, micro):
    run = {**RUN, "scene_size": 128}
    t = Trainer(TrainingConfig(out=str(tmp_path / "fv"), steps=2, model=micro,
                               freeze_image_encoder=True, focus_views=1.0, **run))
    assert t.batches(0).focus_views == 1.0
    t.run()
    assert t.step == 2 and not t._cache  # every focus view is a new input


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="box_prob"):
        TrainingConfig(box_prob=2.0)
    with pytest.raises(ValueError, match="focus_views"):
        TrainingConfig(focus_views=1.5)
    with pytest.raises(ValueError, match="neither a registered size"):
        Trainer(TrainingConfig(model="no_such_model"))


def test_from_scratch_init_ties_decoder_queries_and_keys(micro):
    from maskengine.modeling.transformer import Attention

    model = Trainer(TrainingConfig(model=micro, num_images=1)).model
    attns = [m for m in model.mask_decoder.modules() if isinstance(m, Attention)]
    assert attns and all(torch.equal(a.q_proj.weight, a.k_proj.weight) for a in attns)
    assert model.image_encoder.pos_embed.abs().sum() > 0


def test_batches_built_ahead_by_workers_give_the_same_run(tmp_path, micro):
    inline = Trainer(TrainingConfig(out=str(tmp_path / "inline"), steps=3, model=micro, **RUN))
    inline.run()
    ahead = Trainer(TrainingConfig(out=str(tmp_path / "ahead"), steps=3, model=micro,
                                   workers=2, **RUN))
    ahead.run()
    for k, v in inline.model.state_dict().items():
        torch.testing.assert_close(ahead.model.state_dict()[k], v)
    with pytest.raises(ValueError, match="workers"):
        TrainingConfig(workers=-1)


@pytest.mark.parametrize("budget", ["max_cpu_minutes", "max_minutes"])
def test_a_time_budget_stops_the_run_saved_and_a_rerun_goes_on(tmp_path, micro, budget):
    cfg = TrainingConfig(out=str(tmp_path / "run"), steps=50, model=micro,
                         **{budget: 1e-6}, **{**RUN, "checkpoint_every": 100})
    Trainer(cfg).run()
    logs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [d["step"] for d in logs] == [1] and logs[0]["cpu_seconds"] > 0
    again = Trainer(dataclasses.replace(cfg, **{budget: 0.0}, steps=2))
    assert again.resume_if_possible() and again.step == 1  # the stop saved step 1
    again.run()
    assert again.step == 2
    # A budget already spent by the saved steps stops a resumed run before any step.
    spent = Trainer(dataclasses.replace(cfg, steps=5))
    assert spent.resume_if_possible() and spent.step == 2
    spent.run()
    assert spent.step == 2
    with pytest.raises(ValueError, match=budget):
        TrainingConfig(**{budget: -1.0})


def test_two_data_parallel_processes_make_the_run_of_one_with_accumulate_2(tmp_path, micro):
    import subprocess
    import sys
    from pathlib import Path

    one = Trainer(TrainingConfig(out=str(tmp_path / "one"), steps=3, model=micro,
                                 **{**RUN, "accumulate": 2}))
    one.run()
    args = ["--out", str(tmp_path / "two"), "--steps", "3", "--model", micro, "--threads", "1"]
    for k, v in RUN.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    exe = str(Path(sys.executable).with_name("maskengine"))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         "2", exe, "train", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").open()]
    assert [d["step"] for d in logs] == [1, 2, 3]  # one writer
    ref = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").open()]
    for a, b in zip(logs, ref, strict=True):  # the same batches and prompts
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["prompts"] == b["prompts"]
    # The same weights, up to the order of float sums (AdamW steps are ~lr = 5e-3 each).
    two = torch.load(tmp_path / "two" / "model.pt", weights_only=True)
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(two[k], v, rtol=1e-3, atol=5e-4)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["processes"] == 2


def test_anchor_weight_keeps_a_fine_tune_near_its_starting_weights(tmp_path, micro):
    start = Trainer(TrainingConfig(out=str(tmp_path / "start"), steps=1, model=micro, **RUN))
    start.run()
    init = tmp_path / "start" / "model.pt"
    p0 = torch.load(init, weights_only=True)

    def drift(anchor: float) -> float:
        cfg = TrainingConfig(out=str(tmp_path / f"a{anchor}"), steps=4, model=micro,
                             checkpoint=str(init), anchor_weight=anchor,
                             **{**RUN, "lr": 2e-2})
        sd = torch.load(train(cfg, progress=False), weights_only=True)
        return sum(float((sd[k].float() - v.float()).pow(2).sum()) for k, v in p0.items()
                   if v.is_floating_point())

    free, held = drift(0.0), drift(50.0)
    assert free > 0 and held < 0.5 * free
    with pytest.raises(ValueError, match="anchor_weight"):
        TrainingConfig(anchor_weight=-1.0)
