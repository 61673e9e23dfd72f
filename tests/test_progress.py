"""A run killed part-way continues from its saved progress to the result it would have reached
uninterrupted (bit for bit on one machine and thread count): a comparison or fidelity check
killed mid-run (a session's end, Ctrl-C) loses minutes, not the run."""

from __future__ import annotations

import pytest
import torch

import tinyscale.train.trainer as trainer
from tinyscale.data.datasets import generate_data
from tinyscale.space.recipe import Recipe
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import train_recipe


@pytest.fixture(scope="module")
def data():
    return generate_data(num_classes=4, train_size=256, val_size=128, size=16, seed=0)


RECIPE = Recipe(r=1.0, w=0.5, d=0.5, base_resolution=16, num_classes=4)
# Augmentation, dropout and a tail average on: the continued run must restore all of their state.
CFG = TrainConfig(steps=40, batch_size=32, threads=1, bn_calibration_images=128, warmup=4, translate=2, flip=True,
                  dropout=0.2, average_tail=0.25)


class Kill(BaseException):
    """Stands in for SIGKILL: nothing after it runs in the trainer."""


@pytest.fixture
def kill_at(monkeypatch):
    """``kill_at(k)``: the (k+1)-th training forward raises `Kill` (state after k steps saved)."""

    def arm(k: int) -> None:
        real = trainer.F.cross_entropy
        calls = {"n": 0}

        def cross_entropy(*args, **kwargs):
            if torch.is_grad_enabled():
                calls["n"] += 1
                if calls["n"] == k + 1:
                    monkeypatch.setattr(trainer.F, "cross_entropy", real)  # the next attempt trains normally
                    raise Kill
            return real(*args, **kwargs)

        monkeypatch.setattr(trainer.F, "cross_entropy", cross_entropy)

    return arm


def _same(a, b) -> None:
    assert (a.accuracy, a.loss, a.train_loss, a.steps, a.images_seen, a.start_step) == \
        (b.accuracy, b.loss, b.train_loss, b.steps, b.images_seen, b.start_step)


@pytest.mark.parametrize("k", [5, 35])  # before the tail, and inside the averaged and loss tails
def test_a_killed_run_continues_to_the_uninterrupted_result(data, tmp_path, kill_at, k):
    whole = train_recipe(RECIPE, data, CFG, seed=5)
    path = tmp_path / "run.pt"
    kill_at(k)
    with pytest.raises(Kill):
        train_recipe(RECIPE, data, CFG, seed=5, progress=path, progress_every=0)
    assert path.is_file() and torch.load(path, weights_only=True)["step"] == k
    continued = train_recipe(RECIPE, data, CFG, seed=5, progress=path, progress_every=0)
    _same(continued, whole)  # every step trained, so images_seen and start_step are the whole run's
    assert path.is_file()  # the file is for whoever stores the result to remove


def test_progress_of_another_run_is_not_used(data, tmp_path, kill_at):
    path = tmp_path / "run.pt"
    kill_at(20)
    with pytest.raises(Kill):
        train_recipe(RECIPE, data, CFG, seed=6, progress=path, progress_every=0)
    for other in (CFG.with_(steps=48), CFG.with_(lr=CFG.lr / 2)):  # another length, another setting
        _same(train_recipe(RECIPE, data, other, seed=6, progress=path, progress_every=0),
              train_recipe(RECIPE, data, other, seed=6))
    path.write_bytes(b"not a checkpoint")  # a damaged file: trained from the start
    _same(train_recipe(RECIPE, data, CFG, seed=7, progress=path, progress_every=0),
          train_recipe(RECIPE, data, CFG, seed=7))
    # And progress is not a no-op: another seed's state saved under this run's name moves the result.
    kill_at(20)
    with pytest.raises(Kill):
        train_recipe(RECIPE, data, CFG, seed=8, progress=path, progress_every=0)
    forged = torch.load(path, weights_only=True)
    forged["key"]["seed"] = 9
    torch.save(forged, path)
    assert train_recipe(RECIPE, data, CFG, seed=9, progress=path).loss != train_recipe(RECIPE, data, CFG, seed=9).loss


def test_a_run_continued_from_a_trunk_keeps_counting_from_the_trunk(data, tmp_path, kill_at):
    short = CFG.with_(steps=20, lr_schedule="wsd", decay_fraction=0.25, average_tail=0.0)
    long = short.with_(steps=60)
    trunk = tmp_path / "trunk.pt"
    train_recipe(RECIPE, data, short, seed=5, save_trunk=trunk)
    whole = train_recipe(RECIPE, data, long, seed=5, resume_from=trunk)
    assert whole.start_step == 15
    path = tmp_path / "run.pt"
    kill_at(30 - 15)  # 15 steps after the trunk's
    with pytest.raises(Kill):
        train_recipe(RECIPE, data, long, seed=5, resume_from=trunk, progress=path, progress_every=0)
    assert torch.load(path, weights_only=True)["step"] == 30
    _same(train_recipe(RECIPE, data, long, seed=5, resume_from=trunk, progress=path, progress_every=0), whole)


def test_no_progress_is_saved_before_its_interval(data, tmp_path):
    path = tmp_path / "run.pt"
    train_recipe(RECIPE, data, CFG, seed=5, progress=path)  # the default interval: minutes
    assert not path.exists()


def test_a_study_killed_mid_trial_continues_that_trial_on_resume(tmp_path, monkeypatch):
    from tinyscale.storage import progress_path
    from tinyscale.study.driver import run_study
    from tinyscale.study.executors import make_executor
    from tinyscale.study.trial import StudyConfig

    config = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), steps=12, batch_size=16,
                         train_size=256, val_size=64, extra={"bn_calibration_images": 64})

    def study(directory, **kwargs):
        executor = make_executor("local", 1, threads=1)
        try:
            run_study(directory, config, trials=3, executor=executor, progress=False, **kwargs).close()
        finally:
            executor.close()

    study(tmp_path / "whole")
    monkeypatch.setattr(trainer, "PROGRESS_EVERY", 0.0)  # save after every step
    real, calls = trainer.F.cross_entropy, {"n": 0}

    def killed_in_the_second_trial(*args, **kwargs):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == config.steps + 8:  # its 8th step: 7 saved
                monkeypatch.setattr(trainer.F, "cross_entropy", real)
                raise Kill
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer.F, "cross_entropy", killed_in_the_second_trial)
    killed = tmp_path / "killed"
    with pytest.raises(Kill):
        study(killed)
    assert torch.load(progress_path(killed, 1, 0), weights_only=True)["step"] == 7
    study(killed, resume=True)
    from tinyscale.study.store import Study

    with Study.open(tmp_path / "whole") as a, Study.open(killed) as b:
        assert [(t.number, t.accuracy, t.loss) for t in a.trials()] == [(t.number, t.accuracy, t.loss)
                                                                         for t in b.trials()]
    assert not progress_path(killed, 1, 0).exists()
    from tinyscale.train.heartbeat import heartbeat_path

    assert not heartbeat_path(progress_path(killed, 1, 0)).exists()  # the bar's heartbeat went with it
