"""Where workers train on GPUs, tested without one: the worker -> GPU assignment from a fake
device count, the executors it makes, CUDA_VISIBLE_DEVICES reaching spawned workers, Ray's
fractional GPUs on logical GPUs, and a trial that runs out of GPU memory."""

from __future__ import annotations

import os
import queue
from dataclasses import asdict

import pytest
import torch

from tinyscale.study.executors import (ProcessExecutor, SequentialExecutor, TrialTask, failure_reason, init_worker,
                                       make_executor, run_task)
from tinyscale.study.placement import Placement, check_placement, place_local, ray_gpu_share
from tinyscale.study.plan import data_spec, trial_seed
from tinyscale.study.samplers.base import sample_recipes
from tinyscale.study.trial import StudyConfig
from tinyscale.train.config import TrainConfig

CFG = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), steps=6, batch_size=16,
                  train_size=128, val_size=32, extra={"bn_calibration_images": 32})


@pytest.fixture
def gpus(monkeypatch):
    """``gpus(n)``: torch reports n CUDA GPUs from now on (0: none), and no parent
    CUDA_VISIBLE_DEVICES is set."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def fake(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return fake


@pytest.mark.parametrize("device, listed, per_gpu, count, expected", [
    ("cpu", None, None, 4, ()),
    ("auto", None, None, 0, ()),  # auto without a GPU is the CPU
    ("auto", None, None, 2, (0, 1)),  # auto with GPUs uses all of them
    ("cuda", None, None, 3, (0, 1, 2)),
    ("cuda", None, 2, 2, (0, 1, 0, 1)),  # K per GPU, taken in turn
    ("cuda", (1,), 3, 2, (1, 1, 1)),
    ("cuda", (2, 0), None, 3, (2, 0)),
    ("cuda:1", None, None, 2, (1,)),
    ("cuda:1", None, 2, 2, (1, 1)),
])
def test_workers_are_assigned_to_gpus(device, listed, per_gpu, count, expected):
    placement = place_local(device, listed, per_gpu, device_count=count)
    assert placement.gpus == expected
    assert placement.device == ("cuda" if expected else "cpu")


def test_each_worker_is_given_its_gpu_as_the_parent_names_it():
    placement = Placement("cuda", (0, 1, 0, 1))
    assert placement.visible_devices() == ("0", "1", "0", "1")
    # This process already sees only GPUs 4 and 6: torch's 0 and 1 are those.
    assert placement.visible_devices("4,6") == ("4", "6", "4", "6")
    assert Placement("cuda", (1,)).visible_devices("GPU-aaaa, GPU-bbbb") == ("GPU-bbbb",)


@pytest.mark.parametrize("device, listed, per_gpu, count, message", [
    ("cuda", None, None, 0, "--device cuda: torch sees no CUDA GPU here"),
    ("cuda:0", None, None, 0, "--device cuda:0: torch sees no CUDA GPU here"),
    ("cuda:2", None, None, 2, "there is no GPU 2; torch sees 2"),
    ("cuda", (0, 3), None, 2, "--gpus 0,3: there is no GPU 3; torch sees 2 (0,1)"),
    ("auto", (0, 1), None, 0, "--gpus 0,1: torch sees no CUDA GPU here"),
    ("auto", None, 2, 0, "--trials-per-gpu: torch sees no CUDA GPU here"),
    ("cpu", (0,), None, 2, "--device cpu trains on the CPU"),
    ("cpu", None, 2, 2, "--device cpu trains on the CPU"),
    ("cuda:1", (0,), None, 2, "names one GPU and --gpus several"),
    ("cuda", (0, 0), None, 2, "lists a GPU twice"),
    ("cuda", (), None, 2, "--gpus must list GPU indices"),
    ("cuda", (-1,), None, 2, "--gpus must list GPU indices"),
    ("cuda", None, 0, 2, "--trials-per-gpu must be an integer from 1"),
    ("cuda", None, 65, 2, "--trials-per-gpu must be an integer from 1"),
    ("gpu", None, None, 2, "device must be cpu, cuda or cuda:N"),
])
def test_impossible_placements_are_one_line_errors(device, listed, per_gpu, count, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        place_local(device, listed, per_gpu, device_count=count)
    assert "\n" not in str(info.value)


def test_workers_on_gpus_are_gpus_times_trials_per_gpu(gpus):
    gpus(2)
    assert check_placement("local", None, "cuda", None, 2).gpus == (0, 1, 0, 1)
    assert check_placement("local", 4, "cuda", None, 2).gpus == (0, 1, 0, 1)
    with pytest.raises(ValueError, match="--workers 3: on GPUs there is one worker per GPU and trial slot"):
        check_placement("local", 3, "cuda", None, 2)
    assert check_placement("local", 3, "cpu").gpus == ()  # CPU workers are --workers, as before
    with pytest.raises(ValueError, match="--gpus is for the local executor"):
        check_placement("ray", None, "cuda", (0,))
    assert check_placement("ray", None, "cuda", None, 4) is None  # Ray's GPUs are checked when it starts


def test_executors_follow_the_placement(gpus, monkeypatch):
    gpus(2)
    pool = make_executor("local", None, device="cuda", trials_per_gpu=2, threads=1)
    assert isinstance(pool, ProcessExecutor)
    assert (pool.slots, pool.device, pool.visible_devices) == (4, "cuda", ("0", "1", "0", "1"))
    pool.close()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert make_executor("local", None, device="cuda", threads=1).visible_devices == ("5", "7")
    # One worker trains in this process, where CUDA may already run: by index, not by env.
    single = make_executor("local", None, device="cuda:1", threads=1)
    assert isinstance(single, SequentialExecutor) and single.device == "cuda:1"
    gpus(0)
    cpu = make_executor("local", 2, device="auto", threads=1)  # auto without a GPU: CPU workers, as before
    assert (cpu.slots, cpu.device, cpu.visible_devices) == (2, "cpu", None)
    cpu.close()


def _tasks(n: int) -> list[TrialTask]:
    train = asdict(TrainConfig.from_study(CFG))
    return [TrialTask(i, r.to_dict(), trial_seed(CFG.seed, i), data_spec(CFG), train)
            for i, r in enumerate(sample_recipes(CFG, n))]


def test_a_worker_process_takes_its_gpu_before_cuda_starts(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # (and restored after the test, whatever init_worker sets)
    threads = torch.get_num_threads()
    handed_out = queue.Queue()
    handed_out.put("3")
    try:
        init_worker(1, handed_out)
    finally:
        torch.set_num_threads(threads)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3" and handed_out.empty()


def test_spawned_workers_each_see_only_their_gpu(monkeypatch):
    # No GPU here: the trials fail at once (torch has no CUDA), but each outcome says which
    # CUDA_VISIBLE_DEVICES its worker process was started with.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if torch.cuda.is_available():
        pytest.skip("would train on the real GPUs 5 and 6")
    pool = ProcessExecutor(2, threads=1, visible_devices=("5", "6"))
    try:
        tasks = _tasks(4)
        for task in tasks[:2]:
            pool.submit(task)
        outcomes = [pool.next_outcome() for _ in range(2)]
        for task in tasks[2:]:
            pool.submit(task)
        outcomes += [pool.next_outcome() for _ in range(2)]
    finally:
        pool.close()
    assert sorted(o.number for o in outcomes) == [0, 1, 2, 3]
    assert {o.device for o in outcomes} == {"cuda"}
    assert {o.visible_devices for o in outcomes} <= {"5", "6"}
    assert all(o.result is None and o.error for o in outcomes)


def test_a_cpu_trial_reports_where_it_ran():
    task = _tasks(1)[0]
    outcome = run_task(TrialTask(task.number, task.recipe, task.seed, task.data, {**task.train, "threads": 1}))
    assert outcome.result is not None and outcome.error is None and outcome.device == "cpu"


@pytest.mark.parametrize("device, per_gpu, cluster, expected", [
    ("cuda", None, 2, ("cuda", 1.0)),
    ("cuda", 4, 2, ("cuda", 0.25)),
    ("auto", 2, 1, ("cuda", 0.5)),
    ("auto", None, 0, ("cpu", 0.0)),
    ("cpu", None, 8, ("cpu", 0.0)),
])
def test_ray_trials_reserve_a_share_of_a_gpu(device, per_gpu, cluster, expected):
    assert ray_gpu_share(device, per_gpu, cluster) == expected


@pytest.mark.parametrize("device, per_gpu, cluster, message", [
    ("cuda", None, 0, "--device cuda: the Ray cluster has no GPU"),
    ("auto", 2, 0, "--trials-per-gpu: the Ray cluster has no GPU"),
    ("cuda:1", None, 2, "Ray chooses each trial's GPU"),
    ("cpu", 2, 2, "--device cpu trains on the CPU"),
])
def test_ray_placements_it_cannot_follow_are_errors(device, per_gpu, cluster, message):
    with pytest.raises(ValueError, match=message):
        ray_gpu_share(device, per_gpu, cluster)


def test_ray_packs_k_trials_per_logical_gpu(monkeypatch):
    # Ray's GPUs are logical: a GPU-less machine can declare two, and Ray still pins each actor
    # to one by CUDA_VISIBLE_DEVICES. Four actors at 1/2 GPU each fill both GPUs exactly.
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # Ray refuses 2 GPUs where fewer are visible
    from tinyscale.study.executors import RayExecutor

    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        executor = RayExecutor(None, threads=1, device="cuda", trials_per_gpu=2)
        try:
            assert (executor.slots, executor.device) == (4, "cuda")
            assert sorted(executor.worker_devices()) == ["0", "0", "1", "1"]
        finally:
            executor.close()
    finally:
        ray.shutdown()


OOM = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which "
       "1.20 GiB is free. Process 12 has 77.90 GiB memory in use. Of the allocated memory 70.00 GiB is "
       "allocated by PyTorch. If reserved but unallocated memory is large try setting "
       "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.")


def test_out_of_gpu_memory_is_said_so_in_one_line():
    reason = failure_reason(torch.cuda.OutOfMemoryError(OOM))
    assert reason.startswith("out of GPU memory: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                             "capacity of 79.10 GiB of which 1.20 GiB is free;")
    assert "--trials-per-gpu" in reason and "--retry-failed" in reason
    assert "\n" not in reason and "PYTORCH_CUDA_ALLOC_CONF" not in reason
    # Anything else keeps its type and the line that raised it.
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        other = failure_reason(exc)
    assert other.startswith("RuntimeError: boom (test_placement.py:")


def test_a_trial_out_of_gpu_memory_fails_and_the_study_goes_on(tmp_path, monkeypatch):
    import tinyscale.train.trainer as trainer
    from tinyscale.study.driver import run_study

    real = trainer.train_recipe
    calls = []

    def second_runs_out(recipe, data, config, seed, **kw):
        calls.append(seed)
        if len(calls) == 2:
            raise torch.cuda.OutOfMemoryError(OOM)
        return real(recipe, data, config, seed, **kw)

    monkeypatch.setattr(trainer, "train_recipe", second_runs_out)
    study = run_study(tmp_path / "s", CFG, trials=3, executor=SequentialExecutor(threads=1), progress=False)
    with study:
        trials = study.trials()
    assert [t.state for t in trials] == ["completed", "failed", "completed"]
    assert trials[1].reason.startswith("out of GPU memory: CUDA out of memory. Tried to allocate 2.00 GiB")
    # --retry-failed trains it again (memory to spare this time).
    monkeypatch.setattr(trainer, "train_recipe", real)
    study = run_study(tmp_path / "s", CFG, trials=3, resume=True, retry_failed=True,
                      executor=SequentialExecutor(threads=1), progress=False)
    with study:
        assert [t.state for t in study.trials()] == ["completed"] * 3
