"""Executors and the study driver: sequential, worker processes, Ray; failed trials; kill and resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tinyscale.study.executors import (
    ProcessExecutor,
    SequentialExecutor,
    TrialTask,
    make_executor,
    run_task,
    threads_per_worker,
)
from tinyscale.study.samplers.base import sample_recipes
from tinyscale.study.driver import run_study
from tinyscale.study.plan import data_spec, trial_seed
from tinyscale.study.store import Study
from tinyscale.train.config import TrainConfig
from tinyscale.study.trial import StudyConfig

# Tiny and fast: 16 px generated data, 8-16 px inputs, a dozen steps per trial.
CFG = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), steps=12, batch_size=16,
                  train_size=256, val_size=64, extra={"bn_calibration_images": 64})


def _tasks(n: int) -> list[TrialTask]:
    train = TrainConfig.from_study(CFG)
    from dataclasses import asdict

    return [TrialTask(i, r.to_dict(), trial_seed(CFG.seed, i), data_spec(CFG), asdict(train))
            for i, r in enumerate(sample_recipes(CFG, n))]


def _drain(executor, tasks):
    for t in tasks:
        executor.submit(t)
    return sorted((executor.next_outcome() for _ in tasks), key=lambda o: o.number)


def test_threads_share_the_cores():
    assert threads_per_worker(1, cores=8) == 8
    assert threads_per_worker(3, cores=8) == 2
    assert threads_per_worker(4, cores=2) == 1
    with pytest.raises(ValueError, match="workers"):
        make_executor("local", 0)
    with pytest.raises(ValueError, match="executor must be"):
        make_executor("slurm")
    with pytest.raises(ValueError, match="--address is for the Ray"):
        make_executor("local", 1, address="auto")


def test_task_errors_become_failed_outcomes():
    task = _tasks(1)[0]
    bad = TrialTask(task.number, {**task.recipe, "num_classes": 3}, task.seed, task.data, task.train)
    outcome = run_task(bad)
    assert outcome.result is None and "ValueError" in outcome.error and "classes" in outcome.error


def test_process_workers_match_sequential_results():
    tasks = _tasks(2)
    seq = _drain(SequentialExecutor(threads=1), tasks)
    pool = ProcessExecutor(2, threads=1)
    try:
        par = _drain(pool, tasks)
    finally:
        pool.close()
    assert [o.number for o in par] == [0, 1]
    # Same seed, same thread count: the same numbers, whichever process trained them.
    assert [(o.result.accuracy, o.result.loss) for o in par] == [(o.result.accuracy, o.result.loss) for o in seq]


def test_ray_executor_on_local_instance(tmp_path):
    # With the botorch sampler: its first trials are the stream's, and the proposals (made in
    # the driver) go to the Ray actors like any other trial.
    ray = pytest.importorskip("ray")
    from dataclasses import replace

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = make_executor("ray", 2, threads=1)
        study = run_study(tmp_path / "s", replace(CFG, sampler="botorch", init_trials=5), trials=7,
                          executor=executor, progress=False)
        # The rung schedule's promotions are jobs like any other (issue 25: Ray runs it too).
        with run_study(tmp_path / "h", replace(CFG, schedule="halving", eta=3, rungs=1), trials=6,
                       executor=executor, progress=False) as halving:
            runs = halving.runs()
        executor.close()
    finally:
        ray.shutdown()
    assert [(t.rung, t.state) for t in runs if t.rung == 0] == [(0, "completed")] * 6
    promoted = [t for t in runs if t.rung == 1]
    assert len(promoted) >= 2 and all(t.state == "completed" and t.steps == 3 * CFG.steps for t in promoted)
    trials = study.trials()
    assert [t.state for t in trials] == ["completed"] * 7
    # Two workers: trial 5 is due while one of 0-4 still trains, so the surface lacks its 5
    # trials and the stream fills in; trial 6 is due with 5 trained, and the acquisition proposes.
    assert [t.proposed_by for t in trials[5:]] == ["sobol", "botorch"]
    assert [t.recipe for t in trials[:5]] == sample_recipes(CFG, 5)
    # A Ray actor trains like a local worker process: same seed, same thread count, set when the
    # process starts. (Not like this test's own process, whose torch already ran with the default
    # thread pool: on some machines that alone changes the float order, and after 12 chaotic steps
    # the accuracy, 10.9 % against 9.4 % on 64 images.)
    local = ProcessExecutor(1, threads=1)
    try:
        (expected,) = _drain(local, _tasks(1))
    finally:
        local.close()
    assert trials[0].accuracy == expected.result.accuracy


def test_diverging_trials_fail_and_the_study_goes_on(tmp_path):
    cfg = StudyConfig(**{**CFG.to_dict(), "window": tuple(CFG.window), "r_range": tuple(CFG.r_range),
                         "d_range": tuple(CFG.d_range), "extra": {"lr": 1e30, "warmup": 0}})
    study = run_study(tmp_path / "s", cfg, trials=2, executor=SequentialExecutor(threads=1), progress=False)
    trials = study.trials()
    assert [t.state for t in trials] == ["failed", "failed"]
    assert all("training loss became" in t.reason for t in trials)
    assert study.progress().best_accuracy is None


def test_budget_minutes_and_config_mismatch(tmp_path):
    # A zero-ish budget: the first trial is dispatched only while time remains.
    study = run_study(tmp_path / "s", CFG, budget_minutes=1e-9, executor=SequentialExecutor(threads=1),
                      progress=False)
    assert study.progress().finished <= 1
    study.close()
    other = StudyConfig(**{**CFG.to_dict(), "window": (0.1, 0.5), "r_range": tuple(CFG.r_range),
                           "d_range": tuple(CFG.d_range)})
    with pytest.raises(ValueError, match=r"different configuration \(window"):
        run_study(tmp_path / "s", other, trials=2, resume=True, progress=False)
    with pytest.raises(ValueError, match="already holds a study"):
        run_study(tmp_path / "s", CFG, trials=2, progress=False)
    with pytest.raises(ValueError, match="give a budget"):
        run_study(tmp_path / "t", CFG, progress=False)
    # A config whose data cannot load is refused before anything is written.
    missing = StudyConfig(data=str(tmp_path / "no-such-dataset"))
    with pytest.raises(ValueError, match="does not exist"):
        run_study(tmp_path / "u", missing, trials=1, progress=False)
    assert not (tmp_path / "u").exists()


class _FailingExecutor:
    """Fails every task at once: drives `run_study` without training."""

    slots = 1

    def __init__(self) -> None:
        self.pending = []

    def submit(self, task) -> None:
        self.pending.append(task.number)

    def next_outcome(self):
        from tinyscale.study.executors import TrialOutcome

        return TrialOutcome(self.pending.pop(0), None, "not trained (test executor)")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("resume", [False, True])
def test_study_start_resolves_trainer_and_checks_data_once(tmp_path, monkeypatch, resume):
    import tinyscale.study.plan

    if resume:
        run_study(tmp_path / "s", CFG, trials=1, executor=_FailingExecutor(), progress=False).close()
    calls = {"from_study": 0, "check_data": 0}
    real_from_study, real_check_data = TrainConfig.from_study, tinyscale.study.plan.check_data

    def from_study(cls, config):
        calls["from_study"] += 1
        return real_from_study(config)

    def check_data(config):
        calls["check_data"] += 1
        return real_check_data(config)

    monkeypatch.setattr(TrainConfig, "from_study", classmethod(from_study))
    monkeypatch.setattr(tinyscale.study.plan, "check_data", check_data)
    # A new study, or a resume without the config: either way each check runs once.
    study = run_study(tmp_path / "s", None if resume else CFG, trials=2, resume=resume,
                      executor=_FailingExecutor(), progress=False)
    assert calls == {"from_study": 1, "check_data": 1}
    assert study.progress().finished == 2
    study.close()



def test_resume_refuses_other_trainer_settings(tmp_path):
    # Trainer defaults can change between versions; a study must resume training as it started.
    study = run_study(tmp_path / "s", CFG, trials=1, executor=SequentialExecutor(threads=1), progress=False)
    recorded = study.get_meta("trainer")
    assert recorded["steps"] == CFG.steps and recorded["bn_calibration_images"] == 64 and "threads" not in recorded
    study.set_meta("trainer", {**recorded, "lr": recorded["lr"] * 10})  # as if started by another version
    study.close()
    with pytest.raises(ValueError, match=r"other trainer settings \(lr: "):
        run_study(tmp_path / "s", CFG, trials=2, resume=True, executor=SequentialExecutor(threads=1), progress=False)
    with Study.open(tmp_path / "s") as study:
        assert study.progress().finished == 1  # nothing trained under the other settings



def test_resume_ignores_settings_that_only_change_speed(tmp_path):
    # A study recorded by a version without the small-map kernels (or with them switched off)
    # resumes: they change float summation order, as a thread count does, not what is trained.
    study = run_study(tmp_path / "s", CFG, trials=1, executor=SequentialExecutor(threads=1), progress=False)
    recorded = study.get_meta("trainer")
    assert "small_map_kernels" not in recorded and "threads" not in recorded
    study.set_meta("trainer", {**recorded, "small_map_kernels": False, "threads": 7})
    study.close()
    study = run_study(tmp_path / "s", CFG, trials=2, resume=True, executor=SequentialExecutor(threads=1),
                      progress=False)
    assert study.progress().finished == 2
    study.close()


def test_settings_added_later_resume_at_their_old_value_and_refuse_another(tmp_path):
    # A study, comparison or fidelity store written before a setting existed trained as its
    # LATER_SETTINGS value does: it resumes at that value and is refused at any other.
    from tinyscale.evaluate.compare import CompareStore
    from tinyscale.train.config import LATER_SETTINGS, TrainConfig, comparable_settings, setting_changes

    assert LATER_SETTINGS and all(getattr(TrainConfig(), k) == v for k, v in LATER_SETTINGS.items())
    now = comparable_settings(TrainConfig())
    older = {k: v for k, v in now.items() if k not in LATER_SETTINGS}
    assert setting_changes(older, TrainConfig()) == []
    # Another valid value of each (a setting added later needs one here too).
    other = {"zero_init_residual": True, "average_tail": 0.25, "precision": "bf16", "lr_schedule": "wsd",
             "decay_fraction": 0.3}
    assert set(other) == set(LATER_SETTINGS)
    changed = TrainConfig().with_(**other)
    assert len(setting_changes(older, changed)) == len(LATER_SETTINGS)

    study_dir = tmp_path / "s"
    study_dir.mkdir()
    CompareStore.open(study_dir, {"data": "x", **older}).close()
    CompareStore.open(study_dir, {"data": "x", **now}).close()  # resumes
    with pytest.raises(ValueError, match="another budget"):
        CompareStore.open(study_dir, {"data": "x", **comparable_settings(changed)})


def _count(db, state):
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE state = ?", (state,)).fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_mid_study_then_resume_loses_and_repeats_nothing(tmp_path):
    out = tmp_path / "s"
    n = 6
    cmd = [sys.executable, "-m", "tinyscale.cli", "study", "--data", "generated", "--out", str(out),
           "--trials", str(n), "--steps", "12", "--batch-size", "16", "--base-resolution", "16",
           "--r-range", "0.5,1", "--train-size", "256", "--val-size", "64", "--threads", "1", "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _count(out / "trials.sqlite", "completed") < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the study made no progress"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Study.open(out) as study:
        before = {t.number: t for t in study.trials("completed")}
        times_before = study.trial_times()
        assert 2 <= len(before) < n
    # Resume through the command line too, with no config options: it continues.
    done = subprocess.run([sys.executable, "-m", "tinyscale.cli", "study", "--resume", str(out), "--threads", "1", "--workers", "1",
                           "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Study.open(out) as study:
        trials = study.trials()
        assert [t.number for t in trials] == list(range(n))
        assert all(t.state == "completed" for t in trials)
        # The recipes are the sampler's first n, in order.
        assert [t.recipe for t in trials] == sample_recipes(study.config, n)
        # Trials finished before the kill were kept as they were, not trained again.
        times_after = study.trial_times()
        for number, trial in before.items():
            assert trials[number] == trial
            assert times_after[number] == times_before[number]


_ORPHAN_SCRIPT = """
import multiprocessing, sys, time
from tinyscale.study.executors import ProcessExecutor

if __name__ == "__main__":
    # "detached", the control: workers that were not asked to end with this process.
    executor = ProcessExecutor(1, threads=1, end_with_parent=sys.argv[1] == "attached")
    executor._ensure_pool().submit(time.sleep, 120)
    while not multiprocessing.active_children():
        time.sleep(0.1)
    print(*[p.pid for p in multiprocessing.active_children()], flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaps counts as ended: PID 1 in a container may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_end_when_their_study_process_is_killed(tmp_path):
    # kill -9 of a study or compare must not leave its workers training on, orphaned: each
    # asked the kernel to end it with its parent. The control (no request) shows the test can fail.
    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN_SCRIPT)
    survivors = {}
    for mode in ("attached", "detached"):
        parent = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert workers and all(_alive(p) for p in workers)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors[mode] = [p for p in workers if _alive(p)]
        for pid in survivors[mode]:
            os.kill(pid, signal.SIGKILL)
    assert survivors["attached"] == []
    assert survivors["detached"] != []
