"""A long run is seen moving: a run that keeps its progress also writes how far it has trained
(its heartbeat), and the run loop's bar shows the runs in flight from it (a compare cell on
Imagenette trains for half an hour; before, its bar stood still until the cell ended)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import tinyscale.study.runner as runner
import tinyscale.train.trainer as trainer
from tinyscale.data.datasets import generate_data
from tinyscale.space.recipe import Recipe
from tinyscale.storage import PROGRESS_DIR
from tinyscale.study.executors import DataSpec, TrialOutcome
from tinyscale.study.runner import Job, in_flight_text, queue_of, run_jobs
from tinyscale.train.heartbeat import heartbeat_path, read_heartbeat, write_heartbeat
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import TrainResult, train_recipe

RECIPE = Recipe(r=1.0, w=0.5, d=0.5, base_resolution=16, num_classes=4)
CFG = TrainConfig(steps=30, batch_size=32, threads=1, bn_calibration_images=128, warmup=4)


@pytest.fixture(scope="module")
def data():
    return generate_data(num_classes=4, train_size=256, val_size=128, size=16, seed=0)


@pytest.fixture
def beats(monkeypatch):
    """Every heartbeat the trainer writes, as (step, steps), written at every step."""
    seen: list[tuple[int, int]] = []
    real = trainer.write_heartbeat

    def record(path, step, steps):
        seen.append((step, steps))
        real(path, step, steps)

    monkeypatch.setattr(trainer, "HEARTBEAT_EVERY", 0.0)
    monkeypatch.setattr(trainer, "write_heartbeat", record)
    return seen


def test_a_run_with_a_progress_file_beats_from_its_first_step_to_its_last(data, tmp_path, beats):
    progress = tmp_path / "progress" / "run.pt"
    train_recipe(RECIPE, data, CFG, seed=1, progress=progress)
    steps = [step for step, _ in beats]
    assert steps[0] == 0 and steps[-1] == CFG.steps
    assert steps == sorted(steps) and len(set(steps)) >= CFG.steps  # every step said, in order
    assert {total for _, total in beats} == {CFG.steps}
    assert read_heartbeat(heartbeat_path(progress)) == (CFG.steps, CFG.steps)  # trained; evaluation left


def test_a_run_without_a_progress_file_writes_no_heartbeat(data, tmp_path, beats, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_recipe(RECIPE, data, CFG, seed=1)
    assert beats == [] and list(tmp_path.iterdir()) == []


def test_a_continued_run_beats_from_where_it_continues(data, tmp_path, beats, monkeypatch):
    progress = tmp_path / "run.pt"
    real = trainer.lr_at

    class Kill(BaseException):
        pass

    def lr_at(step, config):  # the kill comes once the progress of 12 steps is saved
        if step == 13 and not killed:
            killed.append(step)
            raise Kill
        return real(step, config)

    killed: list[int] = []
    monkeypatch.setattr(trainer, "lr_at", lr_at)
    with pytest.raises(Kill):
        train_recipe(RECIPE, data, CFG, seed=1, progress=progress, progress_every=0.0)
    beats.clear()
    train_recipe(RECIPE, data, CFG, seed=1, progress=progress, progress_every=0.0)
    assert beats[0] == (13, CFG.steps) and beats[-1] == (CFG.steps, CFG.steps)


def test_heartbeats_round_trip_and_a_bad_one_reads_as_none(tmp_path):
    path = tmp_path / "deep" / "run.pt.steps"
    write_heartbeat(path, 1240, 3600)
    assert read_heartbeat(path) == (1240, 3600)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert read_heartbeat(tmp_path / "missing.steps") is None
    for text in ("", "12", "a b", "40 30", "-1 30", "3 0"):
        path.write_text(text)
        assert read_heartbeat(path) is None, text


def _job(tmp_path: Path, name: str, progress: bool = True) -> Job:
    return Job(name, RECIPE, 0, CFG, progress=str(tmp_path / "progress" / f"{name}.pt") if progress else None)


def test_the_text_names_the_runs_in_flight_that_have_said_how_far_they_are(tmp_path):
    jobs = [_job(tmp_path, f"run{i}") for i in range(6)]
    assert in_flight_text(jobs) == ""  # none has started
    write_heartbeat(heartbeat_path(jobs[0].progress), 1240, 3600)
    assert in_flight_text(jobs) == "training 1,240/3,600 steps"
    write_heartbeat(heartbeat_path(jobs[2].progress), 800, 3600)
    assert in_flight_text(jobs) == "training 1,240/3,600 and 800/3,600 steps"
    for job in jobs[3:]:
        write_heartbeat(heartbeat_path(job.progress), 5, 900)
    assert in_flight_text(jobs) == "training 1,240/3,600, 800/3,600, 5/900 and 2 more steps"
    assert in_flight_text([_job(tmp_path, "run0", progress=False)]) == ""  # no progress file, no heartbeat


class _SlowExecutor:
    """Runs each task by writing its heartbeat, then taking longer than the bar's look."""

    slots = 1

    def __init__(self) -> None:
        self.tasks = []

    def submit(self, task) -> None:
        self.tasks.append(task)

    def next_outcome(self):
        task = self.tasks.pop(0)
        Path(task.progress).parent.mkdir(exist_ok=True)
        Path(task.progress).write_bytes(b"state")
        write_heartbeat(heartbeat_path(task.progress), 1240, 3600)
        time.sleep(0.6)
        result = TrainResult(0.5, 1.0, 3600, 3600 * 32, 1.0, 0.1, 100.0, 1.0, None, 0)
        return TrialOutcome(task.number, result)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("progress", [True, False])
def test_the_bar_shows_a_run_in_flight_and_the_loop_removes_its_files(tmp_path, capsys, monkeypatch, progress):
    monkeypatch.setattr(runner, "WATCH_EVERY_LOGGED", 0.05)  # the bar goes to pytest's capture, not a terminal
    job = _job(tmp_path, "cell")
    recorded = []
    run_jobs(queue_of([job]), lambda j, run: recorded.append(run.state) or "1 stored", data=DataSpec("synthetic"),
             executor=_SlowExecutor(), progress=progress, desc="compare", total=1)
    err = capsys.readouterr().err
    assert recorded == ["completed"]
    assert ("training 1,240/3,600 steps" in err) is progress  # seen while the run trained
    assert not progress or "1 stored" in err
    assert not Path(job.progress).exists() and not heartbeat_path(job.progress).exists()
    assert list(tmp_path.iterdir()) == []  # the progress folder went with them


def test_the_progress_folder_goes_once_empty_and_stays_while_a_run_keeps_something_there(tmp_path):
    folder = tmp_path / PROGRESS_DIR
    folder.mkdir()
    kept = folder / "other-run.pt"
    kept.write_bytes(b"state")  # a run in flight elsewhere (another worker)
    job = Job("cell", RECIPE, 0, CFG, progress=str(folder / "cell.pt"))
    run_jobs(queue_of([job]), lambda j, run: None, data=DataSpec("synthetic"), executor=_SlowExecutor(),
             progress=False, desc="compare")
    assert sorted(p.name for p in folder.iterdir()) == ["other-run.pt"]
    kept.unlink()
    job = Job("cell2", RECIPE, 0, CFG, progress=str(folder / "cell2.pt"))
    run_jobs(queue_of([job]), lambda j, run: None, data=DataSpec("synthetic"), executor=_SlowExecutor(),
             progress=False, desc="compare")
    assert not folder.exists()
    # A folder of another name is the caller's own: never removed, even empty.
    job = Job("cell3", RECIPE, 0, CFG, progress=str(tmp_path / "mine" / "cell3.pt"))
    run_jobs(queue_of([job]), lambda j, run: None, data=DataSpec("synthetic"), executor=_SlowExecutor(),
             progress=False, desc="compare")
    assert (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []
