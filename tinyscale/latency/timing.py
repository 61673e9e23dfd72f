"""Timing one thing honestly: warm-up runs untimed, then each timed run alone with
``time.perf_counter_ns``; the answer is the median with the interquartile range
(`LatencyStats`). Thread counts are fixed while timing: `torch_threads` for the torch engine
(restored afterwards), `ort_session_options` for onnxruntime."""

from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Iterator

from tinyscale import limits


@dataclass(frozen=True)
class LatencyStats:
    """Timed runs of one thing, in microseconds (warm-up runs are not among them)."""

    median_us: float
    q1_us: float
    q3_us: float
    min_us: float
    max_us: float
    runs: int
    warmup: int

    @property
    def iqr_us(self) -> float:
        return self.q3_us - self.q1_us

    @property
    def median_ms(self) -> float:
        return self.median_us / 1000.0

    def to_dict(self) -> dict:
        return {**asdict(self), "iqr_us": self.iqr_us}


def summarize_samples(samples_us: Iterable[float], warmup: int = 0) -> LatencyStats:
    """Median, quartiles (linear interpolation, numpy's default) and range of timed samples."""
    xs = sorted(float(x) for x in samples_us)
    if not xs:
        raise ValueError("no timed runs to summarise")
    if len(xs) == 1:
        q1 = q3 = xs[0]
    else:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return LatencyStats(median_us=statistics.median(xs), q1_us=q1, q3_us=q3, min_us=xs[0], max_us=xs[-1],
                        runs=len(xs), warmup=warmup)


def check_count(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum`` (and at most
    ``maximum``), else a ValueError naming it: the check of every run, thread, batch and network
    count here (the upper bounds are `tinyscale.limits`')."""
    return limits.check_count(name, value, minimum, maximum)


def time_runs(run: Callable[[], object], *, warmup: int, repeats: int,
              clock: Callable[[], int] = time.perf_counter_ns) -> LatencyStats:
    """Call ``run`` ``warmup`` times untimed, then ``repeats`` times, each timed alone with
    ``clock`` (nanoseconds), and summarise the timed ones."""
    check_count("warmup", warmup, 0, limits.MAX_RUNS)
    check_count("repeats", repeats, 1, limits.MAX_RUNS)
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        t0 = clock()
        run()
        samples.append((clock() - t0) / 1000.0)
    return summarize_samples(samples, warmup)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count fixed to ``threads`` inside, restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def ort_session_options(threads: int):
    """onnxruntime options for a timing: ``threads`` intra-op threads, one inter-op thread,
    sequential execution, every graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts
