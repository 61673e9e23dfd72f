"""Fake, deterministic latency measurement for the tests: a clock that moves only when a fake
run says so, and a runner whose 'latency' grows with the part's parameters and input size."""

from __future__ import annotations

import contextlib
import math

import tinyscale.latency as L


class FakeClock:
    """Nanoseconds that move only when a fake run says so."""

    def __init__(self) -> None:
        self.now = 0
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now


def fake_duration_us(module, shape) -> float:
    """A deterministic 'latency' that grows with the work: parameters and input size."""
    n_params = sum(p.numel() for p in module.parameters())
    return 3.0 + n_params / 400.0 + math.prod(shape) / 100.0


def fake_measurer(**kw) -> L.Measurer:
    clock = FakeClock()
    calls = []

    @contextlib.contextmanager
    def factory(measurer, module, shape, whole):
        us = fake_duration_us(module, shape) + (25.0 if whole else 0.0)
        calls.append((tuple(shape), whole))

        def run():
            clock.now += int(round(us * 1000))

        yield run

    m = L.Measurer(clock=clock, runner_factory=factory, **{"warmup": 2, "repeats": 3, "part_warmup": 1,
                                                           "part_repeats": 2, **kw})
    m.calls = calls  # type: ignore[attr-defined]
    return m


def fake_table(recipes, **kw) -> L.LatencyTable:
    m = fake_measurer(**kw)
    table = L.LatencyTable(m.profile())
    table.fill(recipes, m)
    return table


def small_grid_table(base_resolution: int = 32, num_classes: int = 10) -> L.LatencyTable:
    """A fake table over a small grid at a study's base resolution."""
    sides = tuple(max(8, int(base_resolution * f)) for f in (0.5, 0.75, 1.0))
    return fake_table(L.grid_recipes(sides, L.SMALL_GRID_WIDTHS, base_resolution=base_resolution,
                                     num_classes=num_classes))
