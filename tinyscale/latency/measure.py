"""Measuring on this machine (`Measurer`): a whole network or one part, with one engine, thread
count and batch.

The module runs ``warmup`` times untimed, then ``repeats`` times, each timed alone
(`tinyscale.latency.timing`). Torch runs it in eval mode, channels-last, under
``torch.inference_mode``, with its thread count fixed; onnxruntime runs its ONNX graph
(`tinyscale.export.onnx`: whole networks as the graph `tinyscale export` writes, single parts
by the faster static-shape exporter) with fixed threads, one inter-op thread, sequential
execution and every graph optimisation.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from tinyscale.latency.device import DeviceProfile, check_engine
from tinyscale.latency.parts import Part
from tinyscale.latency.timing import LatencyStats, check_count, ort_session_options, time_runs, torch_threads
from tinyscale.limits import MAX_BATCH, MAX_RUNS, MAX_THREADS
from tinyscale.space.recipe import Recipe

# Whole networks: enough runs that the median is steady to a few percent on a quiet machine.
NETWORK_WARMUP, NETWORK_REPEATS = 10, 50
# Parts: many more of them, each short.
PART_WARMUP, PART_REPEATS = 5, 25


@dataclass
class Measurer:
    """Times networks and parts on this machine with one engine and thread count.

    ``runner_factory`` and ``clock`` are seams for tests (a fake runner, a fake clock); by default
    the engine's own runner is built and ``time.perf_counter_ns`` times it.
    """

    engine: str = "torch"
    threads: int = 1
    batch: int = 1
    warmup: int = NETWORK_WARMUP
    repeats: int = NETWORK_REPEATS
    part_warmup: int = PART_WARMUP
    part_repeats: int = PART_REPEATS
    seed: int = 0
    clock: Callable[[], int] = time.perf_counter_ns
    runner_factory: Callable | None = None

    def __post_init__(self) -> None:
        check_engine(self.engine)
        check_count("threads", self.threads, 1, MAX_THREADS)
        check_count("batch", self.batch, 1, MAX_BATCH)
        check_count("warmup", self.warmup, 0, MAX_RUNS)
        check_count("repeats", self.repeats, 1, MAX_RUNS)
        check_count("part warmup", self.part_warmup, 0, MAX_RUNS)
        check_count("part repeats", self.part_repeats, 1, MAX_RUNS)

    def profile(self) -> DeviceProfile:
        return DeviceProfile.current(self.engine, self.threads, self.batch)

    @contextlib.contextmanager
    def _runner(self, module, shape: tuple[int, ...], whole: bool) -> Iterator[Callable[[], object]]:
        if self.runner_factory is not None:
            with self.runner_factory(self, module, shape, whole) as run:
                yield run
            return
        import torch

        gen = torch.Generator().manual_seed(self.seed)
        example = torch.randn(*shape, generator=gen)
        if self.engine == "torch":
            with torch_threads(self.threads):
                module = module.eval().to(memory_format=torch.channels_last)
                x = example.contiguous(memory_format=torch.channels_last)

                def run() -> object:
                    with torch.inference_mode():
                        return module(x)

                yield run
            return
        import onnxruntime as ort

        from tinyscale.export.onnx import network_onnx, part_onnx

        if whole:
            data, _ = network_onnx(module.eval(), shape[-1], self.seed)
        else:
            data = part_onnx(module.eval(), example)
        session = ort.InferenceSession(data, ort_session_options(self.threads), providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: example.numpy()}
        yield lambda: session.run(None, feed)

    def measure_module(self, module, shape: tuple[int, ...], *, whole: bool = True) -> LatencyStats:
        warmup, repeats = (self.warmup, self.repeats) if whole else (self.part_warmup, self.part_repeats)
        with self._runner(module, shape, whole) as run:
            return time_runs(run, warmup=warmup, repeats=repeats, clock=self.clock)

    def measure_recipe(self, recipe: Recipe) -> LatencyStats:
        """The whole network's latency (batch ``batch``, the recipe's input side)."""
        from tinyscale.space.model import build_model

        return self.measure_module(build_model(recipe), (self.batch, 3, recipe.resolution, recipe.resolution))

    def measure_part(self, part: Part) -> LatencyStats:
        return self.measure_module(part.build_module(), part.input_shape(self.batch), whole=False)
