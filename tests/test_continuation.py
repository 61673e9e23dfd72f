"""A promoted run continues from its shorter run's trunk (lr_schedule wsd) and ends where
training it from scratch ends: the property that lets a study in rungs skip the trunk's steps."""

from __future__ import annotations

import json

import pytest
import torch

from tinyscale.data.datasets import generate_data
from tinyscale.space.recipe import Recipe
from tinyscale.train.checkpoint import TrunkKey, load_trunk
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import lr_at, train_recipe


@pytest.fixture(scope="module")
def data():
    return generate_data(num_classes=4, train_size=256, val_size=128, size=16, seed=0)


RECIPE = Recipe(r=1.0, w=0.5, d=0.5, base_resolution=16, num_classes=4)
# Augmentation and dropout on: the continued run must restore their generators too.
SHORT = TrainConfig(steps=20, batch_size=32, threads=1, bn_calibration_images=128, lr_schedule="wsd", warmup=4,
                    translate=2, flip=True, dropout=0.2, decay_fraction=0.25)
LONG = SHORT.with_(steps=60)


def test_wsd_warms_up_holds_then_decays_linearly_to_zero():
    cfg = TrainConfig(steps=100, lr=0.2, lr_schedule="wsd", warmup=10, decay_fraction=0.2)
    assert cfg.trunk_steps == 80
    assert lr_at(0, cfg) == pytest.approx(0.02) and lr_at(9, cfg) == pytest.approx(0.2)
    assert lr_at(10, cfg) == lr_at(79, cfg) == pytest.approx(0.2)
    assert lr_at(80, cfg) == pytest.approx(0.2) and lr_at(90, cfg) == pytest.approx(0.1)
    assert lr_at(99, cfg) == pytest.approx(0.01)
    # The steps before a shorter run's decay are the same in a longer one: what continuation needs.
    longer = cfg.with_(steps=300)
    assert all(lr_at(s, cfg) == lr_at(s, longer) for s in range(cfg.trunk_steps))
    assert TrainConfig(steps=100).trunk_steps is None  # cosine: every step depends on the length


def test_a_continued_run_ends_where_training_from_scratch_ends(data, tmp_path):
    trunk = tmp_path / "trunk.pt"
    short = train_recipe(RECIPE, data, SHORT, seed=5, save_trunk=trunk)
    assert trunk.is_file() and short.start_step == 0
    continued = train_recipe(RECIPE, data, LONG, seed=5, resume_from=trunk)
    scratch = train_recipe(RECIPE, data, LONG, seed=5)
    assert continued.start_step == SHORT.trunk_steps == 15 and scratch.start_step == 0
    assert continued.steps == scratch.steps == 60
    assert continued.images_seen == (60 - 15) * 32  # only the steps trained here
    assert continued.accuracy == pytest.approx(scratch.accuracy, abs=1e-9)
    assert continued.loss == pytest.approx(scratch.loss, rel=1e-5)
    assert continued.train_loss == pytest.approx(scratch.train_loss, rel=1e-5)
    # And the trunk is not a no-op: the same run started from another seed's trunk ends elsewhere.
    other = tmp_path / "other.pt"
    train_recipe(RECIPE, data, SHORT, seed=6, save_trunk=other)
    moved = torch.load(other, weights_only=True)
    moved["key"]["seed"] = 5  # a forged key: the state of seed 6 under seed 5's name
    torch.save(moved, other)
    forged = train_recipe(RECIPE, data, LONG, seed=5, resume_from=other)
    assert forged.start_step == 15 and forged.loss != pytest.approx(scratch.loss, rel=1e-5)


def test_a_trunk_that_does_not_match_is_not_used(data, tmp_path):
    trunk = tmp_path / "trunk.pt"
    train_recipe(RECIPE, data, SHORT, seed=5, save_trunk=trunk)
    key = TrunkKey.of(RECIPE.to_dict(), 5, LONG)
    assert load_trunk(trunk, key, LONG.trunk_steps)["step"] == 15
    assert load_trunk(trunk, TrunkKey.of(RECIPE.to_dict(), 6, LONG), LONG.trunk_steps) is None  # another seed
    assert load_trunk(trunk, TrunkKey.of(RECIPE.to_dict(), 5, LONG.with_(lr=0.003)), 45) is None  # another lr
    assert load_trunk(trunk, TrunkKey.of(RECIPE.to_dict(), 5, LONG.with_(warmup=5)), 45) is None  # another warm-up
    other = Recipe(r=1.0, w=0.5, d=1.0, base_resolution=16, num_classes=4)
    assert load_trunk(trunk, TrunkKey.of(other.to_dict(), 5, LONG), 45) is None
    assert load_trunk(trunk, key, 10) is None  # saved past the asking run's own decay start
    assert load_trunk(tmp_path / "missing.pt", key, 45) is None
    (tmp_path / "damaged.pt").write_bytes(b"not a checkpoint")
    assert load_trunk(tmp_path / "damaged.pt", key, 45) is None
    # The run then trains from scratch (and says so) rather than failing.
    res = train_recipe(RECIPE, data, LONG.with_(lr=0.003), seed=5, resume_from=trunk)
    assert res.failed is None and res.start_step == 0 and res.images_seen == 60 * 32


def test_no_trunk_is_saved_under_cosine_and_a_refused_write_loses_only_the_checkpoint(data, tmp_path):
    trunk = tmp_path / "trunk.pt"
    train_recipe(RECIPE, data, SHORT.with_(lr_schedule="cosine"), seed=5, save_trunk=trunk)
    assert not trunk.exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    res = train_recipe(RECIPE, data, SHORT, seed=5, save_trunk=blocked / "trunk.pt")  # its parent is a file
    assert res.failed is None and res.accuracy is not None


@pytest.mark.parametrize("changes,field", [({"lr_schedule": "step"}, "lr_schedule"),
                                           ({"decay_fraction": 0.05}, "decay_fraction"),
                                           ({"lr_schedule": "wsd", "average_tail": 0.3}, "average_tail")])
def test_bad_schedule_settings_are_clear_errors(changes, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**changes)


def test_a_study_in_rungs_continues_its_promoted_runs_to_the_results_of_retraining(tmp_path):
    from tinyscale.storage import CHECKPOINT_DIR
    from tinyscale.study.driver import run_study
    from tinyscale.study.executors import SequentialExecutor
    from tinyscale.study.trial import StudyConfig

    config = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), window=(0.05, 0.8), steps=10,
                         batch_size=16, train_size=256, val_size=64, seed=3, schedule="halving", eta=3, rungs=1,
                         extra={"bn_calibration_images": 64, "lr_schedule": "wsd"})
    with run_study(tmp_path / "continued", config, trials=6, executor=SequentialExecutor(threads=1),
                   progress=False) as study:
        continued = study.runs()
    # The same study where no trunk can be kept (its checkpoint folder is a file): every
    # promoted run trains from scratch.
    (tmp_path / "retrained").mkdir()
    (tmp_path / "retrained" / CHECKPOINT_DIR).write_text("")
    with run_study(tmp_path / "retrained", config, trials=6, executor=SequentialExecutor(threads=1),
                   progress=False) as study:
        retrained = study.runs()
    promoted = [(t.number, t.rung) for t in continued if t.rung]
    assert len(promoted) == 2 and promoted == [(t.number, t.rung) for t in retrained if t.rung]
    # Rung 1 (30 steps) continued from rung 0's trunk at step 8 (the decay is its last 20 %).
    assert [t.start_step for t in continued if t.rung] == [8, 8] and all(t.start_step == 0 for t in retrained)
    assert [t.steps for t in continued if t.rung] == [30, 30]
    for a, b in zip(continued, retrained):
        assert a.accuracy == pytest.approx(b.accuracy, abs=1e-9) and a.loss == pytest.approx(b.loss, rel=1e-5)
    spent = sum(t.steps - t.start_step for t in continued)
    assert spent == sum(t.steps for t in retrained) - 2 * 8
    # A trunk is read once: the promoted runs' are gone; the other rung-0 runs keep theirs (a
    # resumed study may promote them); the top rung keeps none.
    kept = sorted(p.name for p in (tmp_path / "continued" / CHECKPOINT_DIR).iterdir())
    assert kept == sorted(f"trial-{t.number}-rung-0.pt" for t in continued if t.rung == 0
                          and (t.number, 1) not in promoted)


def test_promote_is_chosen_when_a_study_in_rungs_is_created(capsys, tmp_path):
    from _cli import cli

    from tinyscale.study.plan import demo_config
    from tinyscale.study.store import Study

    tiny = ["--data", "generated", "--base-resolution", "16", "--r-range", "0.5,1.0", "--steps", "10", "--batch-size",
            "16", "--train-size", "128", "--val-size", "32", "--workers", "1", "--threads", "1", "--quiet"]

    def one_line(code, err, *parts):
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert all(p in err for p in parts), err

    code, _, err = cli(capsys, "study", *tiny, "--out", tmp_path / "u", "--trials", "1", "--promote", "continue")
    one_line(code, err, "--promote is for --schedule halving")
    assert not (tmp_path / "u").exists()
    out = tmp_path / "h"
    code, _, err = cli(capsys, "study", *tiny, "--out", out, "--trials", "6", "--schedule", "halving", "--rungs", "1",
                       "--promote", "continue")
    assert code == 0, err
    with Study.open(out) as study:
        assert study.config.extra == {"lr_schedule": "wsd"}
        assert [t.start_step for t in study.rung_runs()] == [8, 8]
    code, text, err = cli(capsys, "trials", out)
    assert code == 0 and "2 promoted runs continued from the shorter run's checkpoint: 44 of their 60 steps" in text
    assert f"checkpoints: 4 in {out / 'checkpoints'} (" in text  # the four recipes not promoted
    code, text, err = cli(capsys, "trials", out, "--json")
    assert sorted(t["start_step"] for t in json.loads(text)["trials"]) == [0] * 6 + [8, 8]
    code, _, err = cli(capsys, "study", "--resume", out, "--trials", "7", "--promote", "retrain")
    one_line(code, err, "the study's promoted runs continue; resume it with --promote continue")
    code, _, err = cli(capsys, "study", *tiny, "--out", tmp_path / "r", "--trials", "1", "--schedule", "halving",
                       "--promote", "retrain")
    assert code == 0, err
    with Study.open(tmp_path / "r") as study:
        assert study.config.extra == {}  # retrain is the trainer's default: nothing stored
    # A new study in rungs retrains unless told to continue, as the demo's does (its config is
    # the measured one); a uniform one stores nothing either.
    code, _, err = cli(capsys, "study", *tiny, "--out", tmp_path / "d", "--trials", "1", "--schedule", "halving")
    assert code == 0, err
    code, _, err = cli(capsys, "study", *tiny, "--out", tmp_path / "un", "--trials", "1")
    assert code == 0, err
    with Study.open(tmp_path / "d") as halving, Study.open(tmp_path / "un") as uniform:
        assert halving.config.extra == uniform.config.extra == {}
        assert halving.config.extra.get("lr_schedule") == demo_config().extra.get("lr_schedule")


def test_a_step_budget_counts_the_steps_a_continued_run_trains(tmp_path):
    from tinyscale.study.driver import run_study
    from tinyscale.study.executors import SequentialExecutor
    from tinyscale.study.trial import StudyConfig

    config = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), window=(0.05, 0.8), steps=10,
                         batch_size=16, train_size=256, val_size=64, seed=3, schedule="halving", eta=3, rungs=1,
                         extra={"bn_calibration_images": 64, "lr_schedule": "wsd"})
    budget = 6 * 10 + 2 * 22  # six recipes and two promotions that continue (30 - 8 steps each)
    with run_study(tmp_path / "s", config, budget_steps=budget, executor=SequentialExecutor(threads=1),
                   progress=False) as study:
        runs = study.runs("completed")
    promoted = [t for t in runs if t.rung]
    assert promoted and all(t.start_step == 8 for t in promoted)
    spent = sum(t.steps - t.start_step for t in runs)
    # Every step-unit spent, none over: counted at 30 steps a promotion would have stopped short.
    assert spent == budget, [(t.number, t.rung, t.steps, t.start_step) for t in runs]
