"""Latency as a budget: honest measurement, a per-block lookup table, and solving for a target.

**Measurement** (`Measurer`): the network (or one part of it) runs ``warmup`` times untimed, then
``repeats`` times, each timed on its own with ``time.perf_counter_ns``; the answer is the median
with the interquartile range (`LatencyStats`). Threads are fixed: ``torch.set_num_threads`` for
the torch engine (restored afterwards), ``SessionOptions.intra_op_num_threads`` (one inter-op
thread, sequential execution, all graph optimisations) for onnxruntime. Torch runs the module
in eval mode, channels-last, under ``torch.inference_mode``; onnxruntime runs the exported ONNX
graph (whole networks: the graph `tinyscale export` writes, dynamo exporter, one file; single
parts: the TorchScript exporter, ~0.2 s per part instead of ~1.5 s, falling back to dynamo).

**Prediction** (`LatencyTable`): FBNet/ChamNet-style. A network is its parts — the stem, every
block, the head (1×1 conv, pooling, classifier) — and each part's latency is looked up by its
shapes (`Part.key`: role, block kind, kernel, stride, in/mid/out/SE channels, input side,
classes) and summed. Parts measured alone miss what the whole network shares and add a
per-call overhead of their own, so the sum is corrected by a linear fit on whole-network
measurements of calibration recipes: ``predicted = slope · sum + per_part · parts + intercept``
(`Calibration`; non-negative least squares, so the prediction is non-decreasing in every part).
Where the sum's error depends on the network's shape (on onnxruntime wide and deep networks are
slower than their parts, small ones faster), ``correction="gp"`` adds a GP over (log input px,
log w, log d) of what the linear fit leaves, log(measured / linear), fitted on more calibration
networks drawn from the recipe box (`box_recipes`); far from them it falls back to the linear fit.
Answers are microseconds.

Which shapes are measured (the choice): a **grid of recipes** (`grid_recipes`: input sides ×
widths, deep enough that every stage has a repeated block, both rule sets), since d changes
only how often a shape repeats, not which shapes exist; a part that is not in the table is
**estimated** from the nearest measured parts of the same role, kind, kernel, stride and skip
(distance in log side, log mid and log out channels) by a local fit a + b·MACs (a fixed cost
per call plus a cost per MAC: small maps are dominated by the first), and the prediction says
how many parts were estimated. `LatencyTable.fill` measures the exact parts
of given recipes instead (lazy, FBNet's exact table) when the device is at hand.

A **profile** file (`DeviceProfile` + entries + calibration, JSON, `FORMAT_VERSION`) is portable:
`tinyscale latency-table --out device.json` on the deployment box, `--device device.json` here.
A file of another architecture family, another format version, truncated or missing keys is
refused with a `ValueError` that says which.

**Budgets**: `solve_width_latency` (w at fixed r, d) and `solve_latency` (any knob, e.g. φ) use
the MACs solvers' bisection (`tinyscale.space.steps`) on the predicted latency, which is
non-decreasing in w and φ up to measurement noise.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tinyscale.space.arch import STEM_KERNEL, STEM_STRIDE, Architecture, BlockSpec, build_architecture, conv_out
from tinyscale.space.cost import _block_cost
from tinyscale.space.recipe import Recipe

FORMAT = "tinyscale-latency-table"
STUDY_FILE = "latency.json"  # a study's device table (`tinyscale study --device FILE` copies it there)
FORMAT_VERSION = 1
FAMILY = "efficientnet-b0"
ENGINES = ("torch", "onnxruntime")
# Whole networks: enough runs that the median is steady to a few percent on a quiet machine.
NETWORK_WARMUP, NETWORK_REPEATS = 10, 50
# Parts: many more of them, each short.
PART_WARMUP, PART_REPEATS = 5, 25
CORRECTIONS = ("linear", "gp")  # how the sum of parts is corrected to whole networks
# Calibration networks by default: the linear fit has 3 coefficients; the GP needs the box covered.
DEFAULT_CALIBRATION = {"linear": 8, "gp": 32}
# Measured parts a missing part is estimated from (`LatencyTable.estimate`).
ESTIMATE_NEIGHBOURS = 4
# MnasNet's soft latency reward exponent (Tan et al. 2019, β = w = -0.07).
MNASNET_BETA = -0.07


# --------------------------------------------------------------------------------------------
# Statistics and timing


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


def _check_count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def time_runs(run: Callable[[], object], *, warmup: int, repeats: int,
              clock: Callable[[], int] = time.perf_counter_ns) -> LatencyStats:
    """Call ``run`` ``warmup`` times untimed, then ``repeats`` times, each timed alone with
    ``clock`` (nanoseconds), and summarise the timed ones."""
    _check_count("warmup", warmup, 0)
    _check_count("repeats", repeats, 1)
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        t0 = clock()
        run()
        samples.append((clock() - t0) / 1000.0)
    return summarize_samples(samples, warmup)


# --------------------------------------------------------------------------------------------
# The device


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def engine_version(engine: str) -> str:
    check_engine(engine)
    if engine == "torch":
        import torch

        return torch.__version__
    import onnxruntime

    return onnxruntime.__version__


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


@dataclass(frozen=True)
class DeviceProfile:
    """What a latency was measured on. Two profiles with equal `device_key` answer for the same
    device and setting (same CPU model, OS, engine and version, threads, batch)."""

    cpu: str
    machine: str
    system: str
    engine: str
    engine_version: str
    threads: int
    batch: int
    family: str = FAMILY
    format_version: int = FORMAT_VERSION

    @classmethod
    def current(cls, engine: str = "torch", threads: int = 1, batch: int = 1) -> DeviceProfile:
        _check_count("threads", threads, 1)
        _check_count("batch", batch, 1)
        return cls(cpu=cpu_model(), machine=platform.machine() or "unknown", system=platform.system() or "unknown",
                   engine=check_engine(engine), engine_version=engine_version(engine), threads=threads, batch=batch)

    @property
    def device_key(self) -> tuple:
        return (self.cpu, self.machine, self.system, self.engine, self.engine_version, self.threads, self.batch)

    def same_device(self, other: DeviceProfile) -> bool:
        return self.device_key == other.device_key

    def describe(self) -> str:
        return (f"{self.cpu} ({self.machine}, {self.system}), {self.engine} {self.engine_version}, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}, batch {self.batch}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "profile") -> DeviceProfile:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: 'profile' must be an object")
        missing = [k for k in ("cpu", "machine", "system", "engine", "engine_version", "threads", "batch",
                               "family", "format_version") if k not in data]
        if missing:
            raise ValueError(f"{where}: the profile lacks {', '.join(repr(k) for k in missing)}")
        if data["family"] != FAMILY:
            raise ValueError(f"{where}: measured for architecture family {data['family']!r}; "
                             f"tinyscale predicts {FAMILY!r}")
        try:
            return cls(cpu=str(data["cpu"]), machine=str(data["machine"]), system=str(data["system"]),
                       engine=check_engine(data["engine"]), engine_version=str(data["engine_version"]),
                       threads=_check_count("threads", data["threads"], 1),
                       batch=_check_count("batch", data["batch"], 1),
                       family=data["family"], format_version=data["format_version"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------------------------
# Parts of a network


@dataclass(frozen=True)
class Part:
    """One separately timed piece of a network, identified by its shapes alone.

    ``role`` is "stem" (3×3 stride-2 conv from 3 channels, BN, SiLU), "block" (an MBConv block:
    ``kind`` "ds" or "ir") or "head" (1×1 conv, BN, SiLU, global pooling, classifier).
    ``size`` is the input side; ``classes`` matters for the head only.
    """

    role: str
    kind: str
    kernel: int
    stride: int
    in_channels: int
    mid_channels: int
    out_channels: int
    se_channels: int
    size: int
    classes: int = 0

    @property
    def key(self) -> str:
        return (f"{self.role}:{self.kind}:k{self.kernel}s{self.stride}:c{self.in_channels}-{self.mid_channels}-"
                f"{self.out_channels}:se{self.se_channels}:hw{self.size}:n{self.classes}")

    @property
    def out_size(self) -> int:
        return conv_out(self.size, self.kernel, self.stride)

    @property
    def has_skip(self) -> bool:
        return self.role == "block" and self.stride == 1 and self.in_channels == self.out_channels

    @property
    def group(self) -> tuple:
        """Parts whose latencies are comparable (used to estimate a part the table lacks)."""
        return (self.role, self.kind, self.kernel, self.stride, self.has_skip)

    @property
    def macs(self) -> int:
        if self.role == "stem":
            return self.out_size ** 2 * 3 * self.out_channels * self.kernel ** 2
        if self.role == "head":
            return self.size ** 2 * self.in_channels * self.out_channels + self.out_channels * self.classes
        return _block_cost(self.kind, self.kernel, self.in_channels, self.mid_channels, self.out_channels,
                           self.se_channels, self.size ** 2, self.out_size ** 2)[0]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Part:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def input_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.in_channels, self.size, self.size)

    def build_module(self):
        """The torch module of this part (eval mode, random weights)."""
        from torch import nn

        from tinyscale.space.model import DepthwiseSeparable, InvertedResidual, _bn, _conv

        if self.role == "stem":
            module = nn.Sequential(_conv(3, self.out_channels, self.kernel, self.stride),
                                   _bn(self.out_channels), nn.SiLU(inplace=True))
        elif self.role == "head":
            module = _head_module(self.in_channels, self.out_channels, self.classes)
        else:
            spec = BlockSpec(stage=0, index=0, kind=self.kind, kernel=self.kernel, stride=self.stride,
                             in_channels=self.in_channels, mid_channels=self.mid_channels,
                             out_channels=self.out_channels, se_channels=self.se_channels,
                             in_size=self.size, out_size=self.out_size)
            module = (DepthwiseSeparable if self.kind == "ds" else InvertedResidual)(spec, 0.0)
        return module.eval()


@functools.lru_cache(maxsize=1)
def _head_class():
    from torch import nn

    from tinyscale.space.model import _bn, _conv

    class Head(nn.Module):
        """conv_head, bn2, SiLU, global average pooling, classifier: EfficientNet's tail."""

        def __init__(self, cin: int, cout: int, classes: int) -> None:
            super().__init__()
            self.conv_head = _conv(cin, cout, 1)
            self.bn2 = _bn(cout)
            self.act2 = nn.SiLU(inplace=True)
            self.classifier = nn.Linear(cout, classes)

        def forward(self, x):
            return self.classifier(self.act2(self.bn2(self.conv_head(x))).mean((2, 3)))

    return Head


def _head_module(cin: int, cout: int, classes: int):
    return _head_class()(cin, cout, classes)


def parts_of(arch: Architecture) -> tuple[Part, ...]:
    """The stem, every block and the head of a built architecture, in order."""
    parts = [Part("stem", "conv", STEM_KERNEL, STEM_STRIDE, 3, 3, arch.stem_channels, 0, arch.resolution)]
    for b in arch.blocks:
        parts.append(Part("block", b.kind, b.kernel, b.stride, b.in_channels, b.mid_channels, b.out_channels,
                          b.se_channels, b.in_size))
    last = arch.blocks[-1].out_channels
    parts.append(Part("head", "conv", 1, 1, last, last, arch.head_channels, 0, arch.final_size, arch.num_classes))
    return tuple(parts)


def recipe_parts(recipe: Recipe) -> tuple[Part, ...]:
    return parts_of(build_architecture(recipe))


# --------------------------------------------------------------------------------------------
# Engines


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


def part_onnx_bytes(module, example) -> bytes:
    """One part as ONNX (static shapes): the TorchScript exporter (fast), else dynamo."""
    import torch

    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            buf = io.BytesIO()
            try:
                torch.onnx.export(module, (example,), buf, dynamo=False, input_names=["x"])
                return buf.getvalue()
            except Exception:  # the legacy exporter is gone or refuses: the dynamo one
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "part.onnx"
                    torch.onnx.export(module, (example,), str(path), dynamo=True, external_data=False,
                                      input_names=["x"])
                    return path.read_bytes()
    finally:
        quiet.setLevel(level)


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
        _check_count("threads", self.threads, 1)
        _check_count("batch", self.batch, 1)
        _check_count("warmup", self.warmup, 0)
        _check_count("repeats", self.repeats, 1)
        _check_count("part warmup", self.part_warmup, 0)
        _check_count("part repeats", self.part_repeats, 1)

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

        if whole:
            from tinyscale.export.core import _onnx_bytes

            data, _ = _onnx_bytes(module.eval(), shape[-1], self.seed)
        else:
            data = part_onnx_bytes(module.eval(), example)
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


# --------------------------------------------------------------------------------------------
# The table and its calibration


@dataclass(frozen=True)
class Entry:
    part: Part
    median_us: float
    iqr_us: float

    def to_dict(self) -> dict:
        return {"part": self.part.to_dict(), "median_us": self.median_us, "iqr_us": self.iqr_us}


@dataclass(frozen=True)
class CalibrationPoint:
    recipe: Recipe
    measured_us: float
    summed_us: float
    parts: int

    def to_dict(self) -> dict:
        return {"recipe": self.recipe.to_dict(), "measured_us": self.measured_us, "summed_us": self.summed_us,
                "parts": self.parts}


def _shape_features(recipe: Recipe) -> list[float]:
    """What the GP correction sees of a network: log input side, log w, log d."""
    return [math.log(recipe.resolution), math.log(recipe.w), math.log(recipe.d)]


@dataclass(frozen=True)
class Calibration:
    """predicted = slope · summed + per_part_us · parts + intercept_us, times exp(GP mean) of the
    shape for ``kind == "gp"`` (the GP is refitted from ``points`` when first used, so a table
    file stores only the points)."""

    slope: float = 1.0
    per_part_us: float = 0.0
    intercept_us: float = 0.0
    points: tuple[CalibrationPoint, ...] = ()
    kind: str = "linear"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def linear(self, summed_us: float, parts: int) -> float:
        return self.slope * summed_us + self.per_part_us * parts + self.intercept_us

    def apply(self, summed_us: float, parts: int, recipe: Recipe | None = None) -> float:
        value = self.linear(summed_us, parts)
        if self.kind != "gp" or recipe is None:
            return value
        return value * math.exp(self.log_ratio(recipe))

    def log_ratio(self, recipe: Recipe) -> float:
        """The GP's mean of log(measured / linear) at the recipe's shape (0 without a GP)."""
        if self.kind != "gp":
            return 0.0
        key = tuple(_shape_features(recipe))
        if key not in self._cache:
            import torch

            model = self._model()
            with torch.no_grad():
                x = torch.tensor([list(key)], dtype=torch.float64)
                self._cache[key] = float(model.posterior(x).mean.squeeze())
        return self._cache[key]

    def _model(self):
        if "model" not in self._cache:
            import torch
            from botorch.fit import fit_gpytorch_mll
            from botorch.models import SingleTaskGP
            from botorch.models.transforms import Normalize, Standardize
            from gpytorch.mlls import ExactMarginalLogLikelihood

            x = torch.tensor([_shape_features(p.recipe) for p in self.points], dtype=torch.float64)
            y = torch.tensor([[math.log(p.measured_us / self.linear(p.summed_us, p.parts))] for p in self.points],
                             dtype=torch.float64)
            model = SingleTaskGP(x, y, input_transform=Normalize(d=x.shape[1]), outcome_transform=Standardize(m=1))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            model.eval()
            self._cache["model"] = model
        return self._cache["model"]

    @classmethod
    def fit(cls, points: Iterable[CalibrationPoint], kind: str = "linear") -> Calibration:
        """Non-negative least squares on (summed, parts, 1), so the prediction never falls as a
        part grows or is added; with fewer than 4 points, or a fit without a positive slope,
        the proportional fit measured ≈ slope · summed. ``kind="gp"`` adds the GP of what that
        leaves (it needs at least `MIN_GP_POINTS` points)."""
        import numpy as np
        from scipy.optimize import nnls

        if kind not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {kind!r}")
        pts = tuple(points)
        if kind == "gp" and len(pts) < MIN_GP_POINTS:
            raise ValueError(f"a gp correction needs at least {MIN_GP_POINTS} calibration networks, got {len(pts)}")
        if not pts:
            return cls()
        y = np.array([p.measured_us for p in pts], dtype=float)
        s = np.array([p.summed_us for p in pts], dtype=float)
        if len(pts) >= 4:
            a = np.column_stack([s, [float(p.parts) for p in pts], np.ones(len(pts))])
            coef, _ = nnls(a, y)
            if coef[0] > 0:
                return cls(float(coef[0]), float(coef[1]), float(coef[2]), pts, kind)
        return cls(float(np.dot(s, y) / np.dot(s, s)), 0.0, 0.0, pts, kind)

    def to_dict(self) -> dict:
        out = {"slope": self.slope, "per_part_us": self.per_part_us, "intercept_us": self.intercept_us,
               "points": [p.to_dict() for p in self.points]}
        if self.kind != "linear":  # linear tables stay byte-identical to those of earlier versions
            out["kind"] = self.kind
        return out


MIN_GP_POINTS = 8


@dataclass(frozen=True)
class Prediction:
    """A predicted latency and how it was reached."""

    latency_us: float
    summed_us: float
    parts: int
    estimated: int  # parts the table lacked, estimated from a neighbour

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000.0


@dataclass
class LatencyTable:
    """Per-part latencies of one device profile, and the calibration to whole networks."""

    profile: DeviceProfile
    entries: dict[str, Entry] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)
    measurement: dict = field(default_factory=dict)  # warm-up and repeats used
    _estimates: dict = field(default_factory=dict, repr=False, compare=False)  # key -> estimate

    # --- lookup -----------------------------------------------------------------------------
    def lookup(self, part: Part) -> tuple[float, bool]:
        """(latency in µs, exact): the entry for the part's key, else an estimate."""
        entry = self.entries.get(part.key)
        if entry is not None:
            return entry.median_us, True
        if part.key not in self._estimates:
            self._estimates[part.key] = self.estimate(part)
        return self._estimates[part.key], False

    def estimate(self, part: Part) -> float:
        """A part the table lacks, from the measured parts of its group (role, kind, kernel,
        stride, skip): the `ESTIMATE_NEIGHBOURS` nearest (distance in log side, log mid and log
        out channels; heads with the same number of classes first) give a local fit
        latency = a + b·MACs (a, b >= 0: a fixed cost per call plus a cost per MAC); with one
        neighbour, or neighbours of equal MACs, its latency scaled by the ratio of MACs."""
        import numpy as np
        from scipy.optimize import nnls

        target = (math.log(part.size), math.log(part.mid_channels), math.log(part.out_channels))
        scored = []
        for entry in self.entries.values():
            p = entry.part
            if p.group != part.group:
                continue
            here = (math.log(p.size), math.log(p.mid_channels), math.log(p.out_channels))
            dist = sum((a - b) ** 2 for a, b in zip(target, here)) + (p.classes != part.classes) * 1e6
            scored.append((dist, entry.part.key, entry))
        if not scored:
            raise ValueError(f"the latency table has no {part.role} part like {part.key} "
                             "(nothing of its kind, kernel and stride was measured)")
        scored.sort(key=lambda x: (x[0], x[1]))
        near = [e for _, _, e in scored[:ESTIMATE_NEIGHBOURS]]
        xs = np.array([float(e.part.macs) for e in near])
        if len(near) >= 2 and xs.max() > xs.min():
            ys = np.array([e.median_us for e in near])
            (a, b), _ = nnls(np.column_stack([np.ones_like(xs), xs]), ys)
            if b > 0:
                return float(a + b * part.macs)
        best = near[0]
        return best.median_us * part.macs / max(1, best.part.macs)

    def predict(self, recipe: Recipe) -> Prediction:
        parts = recipe_parts(recipe)
        total, estimated = 0.0, 0
        for part in parts:
            us, exact = self.lookup(part)
            total += us
            estimated += not exact
        return Prediction(self.calibration.apply(total, len(parts), recipe), total, len(parts), estimated)

    def predict_us(self, recipe: Recipe) -> float:
        return self.predict(recipe).latency_us

    def missing(self, recipes: Iterable[Recipe]) -> list[Part]:
        """The distinct parts of ``recipes`` the table lacks, in first-seen order."""
        seen: dict[str, Part] = {}
        for recipe in recipes:
            for part in recipe_parts(recipe):
                if part.key not in self.entries:
                    seen.setdefault(part.key, part)
        return list(seen.values())

    # --- building -----------------------------------------------------------------------------
    def add(self, part: Part, stats: LatencyStats) -> None:
        """Enter one measured part (estimates made before are forgotten)."""
        self.entries[part.key] = Entry(part, stats.median_us, stats.iqr_us)
        self._estimates.clear()

    def copy(self) -> LatencyTable:
        return LatencyTable(self.profile, dict(self.entries), self.calibration, dict(self.measurement))

    def fill(self, recipes: Iterable[Recipe], measurer: Measurer, *, progress: bool = False) -> int:
        """Measure the parts of ``recipes`` the table lacks (exact keys); returns how many."""
        self._check_measurer(measurer)
        todo = self.missing(recipes)
        for part in _bar(todo, "parts", progress):
            self.add(part, measurer.measure_part(part))
        self.measurement = {"part_warmup": measurer.part_warmup, "part_repeats": measurer.part_repeats,
                            "warmup": measurer.warmup, "repeats": measurer.repeats}
        return len(todo)

    def calibrate(self, recipes: Iterable[Recipe], measurer: Measurer, *, progress: bool = False,
                  kind: str = "linear") -> Calibration:
        """Measure whole networks and fit the correction (``kind``: `CORRECTIONS`) from summed
        parts to them."""
        self._check_measurer(measurer)
        recipes = list(recipes)
        self.fill(recipes, measurer, progress=progress)
        points = []
        for recipe in _bar(recipes, "networks", progress):
            stats = measurer.measure_recipe(recipe)
            raw = Calibration()
            pred = replace(self, calibration=raw).predict(recipe)
            points.append(CalibrationPoint(recipe, stats.median_us, pred.summed_us, pred.parts))
        self.calibration = Calibration.fit(points, kind)
        return self.calibration

    def _check_measurer(self, measurer: Measurer) -> None:
        if (measurer.engine, measurer.threads, measurer.batch) != (self.profile.engine, self.profile.threads,
                                                                   self.profile.batch):
            raise ValueError("the measurer's engine/threads/batch differ from the table's profile")

    # --- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "profile": self.profile.to_dict(),
            "measurement": dict(self.measurement),
            "calibration": self.calibration.to_dict(),
            "entries": {k: e.to_dict() for k, e in sorted(self.entries.items())},
        }

    def save(self, path: str | os.PathLike) -> Path:
        from tinyscale.storage import write_text_atomically

        return write_text_atomically(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: object, where: str = "latency table") -> LatencyTable:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: not a tinyscale latency table (a JSON object is expected)")
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: not a tinyscale latency table (format {data.get('format')!r}, "
                             f"expected {FORMAT!r})")
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: format version {data.get('format_version')!r}; this tinyscale reads "
                             f"version {FORMAT_VERSION}: rebuild it with `tinyscale latency-table`")
        missing = [k for k in ("profile", "calibration", "entries") if k not in data]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
        profile = DeviceProfile.from_dict(data["profile"], where)
        if profile.format_version != FORMAT_VERSION:
            raise ValueError(f"{where}: the profile says format version {profile.format_version!r}, "
                             f"this tinyscale reads {FORMAT_VERSION}")
        try:
            entries = {}
            for key, raw in data["entries"].items():
                part = Part.from_dict(raw["part"])
                if part.key != key:
                    raise ValueError(f"entry {key!r} holds the part {part.key!r}")
                median = float(raw["median_us"])
                if not (math.isfinite(median) and median > 0):
                    raise ValueError(f"entry {key!r} has latency {median!r}")
                entries[key] = Entry(part, median, float(raw["iqr_us"]))
            cal = data["calibration"]
            points = tuple(CalibrationPoint(Recipe.from_dict(p["recipe"]), float(p["measured_us"]),
                                            float(p["summed_us"]), int(p["parts"])) for p in cal["points"])
            kind = cal.get("kind", "linear")
            if kind not in CORRECTIONS:
                raise ValueError(f"calibration kind {kind!r} is not one of {', '.join(CORRECTIONS)}")
            if kind == "gp" and len(points) < MIN_GP_POINTS:
                raise ValueError(f"a gp calibration with {len(points)} points (at least {MIN_GP_POINTS} needed)")
            calibration = Calibration(float(cal["slope"]), float(cal["per_part_us"]), float(cal["intercept_us"]),
                                      points, kind)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where}: malformed entries or calibration ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not entries:
            raise ValueError(f"{where}: the table has no entries")
        return cls(profile, entries, calibration, dict(data.get("measurement") or {}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        path = Path(path)
        text = path.read_text(encoding="utf-8")  # OSError: the CLI's "machine's to fix" message
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON, truncated or corrupt ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, str(path))


def _bar(items: list, unit: str, progress: bool):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, unit=unit[:-1], desc=f"latency {unit}", dynamic_ncols=True)


# --------------------------------------------------------------------------------------------
# Which recipes the table is built from

GRID_SIDES = (64, 96, 128, 160, 192, 224, 256)
GRID_WIDTHS = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4)
SMALL_GRID_SIDES = (96, 160, 224)
SMALL_GRID_WIDTHS = (0.35, 0.7, 1.0)
GRID_DEPTH = 2.0  # every stage has a repeated block (its shapes do not depend on d)
CALIBRATION_DEPTHS = (0.5, 1.0, 1.6)


def grid_recipes(sides: Iterable[int] = GRID_SIDES, widths: Iterable[float] = GRID_WIDTHS, *,
                 rules: Iterable[str] = ("tinynet", "efficientnet"), depth: float = GRID_DEPTH,
                 base_resolution: int = 224, num_classes: int = 1000) -> list[Recipe]:
    """Recipes whose parts span the search space: each input side × width, at one depth where
    every stage repeats (r is set so the floor gives exactly the side)."""
    return [Recipe(r=(side + 0.5) / base_resolution, w=w, d=depth, rules=rule, base_resolution=base_resolution,
                   num_classes=num_classes) for rule in rules for side in sides for w in widths]


def calibration_recipes(sides: Iterable[int] = GRID_SIDES, widths: Iterable[float] = GRID_WIDTHS, *,
                        count: int = 8, seed: int = 0, base_resolution: int = 224,
                        num_classes: int = 1000) -> list[Recipe]:
    """``count`` whole networks on the grid's sides and widths (so all their parts are in the
    table), at several depths, drawn with a seeded generator."""
    import random

    rng = random.Random(seed)
    sides, widths = list(sides), list(widths)
    out: list[Recipe] = []
    seen = set()
    for _ in range(count * 20):
        if len(out) >= count:
            break
        side, w, d = rng.choice(sides), rng.choice(widths), CALIBRATION_DEPTHS[len(out) % len(CALIBRATION_DEPTHS)]
        recipe = Recipe(r=(side + 0.5) / base_resolution, w=w, d=d, base_resolution=base_resolution,
                        num_classes=num_classes)
        if recipe not in seen:
            seen.add(recipe)
            out.append(recipe)
    return out


BOX_DEPTHS = (0.35, 1.5)  # the depth range box-drawn calibration networks span (the samplers')


def box_recipes(sides: Iterable[int] = GRID_SIDES, widths: Iterable[float] = GRID_WIDTHS, *, count: int = 32,
                seed: int = 0, base_resolution: int = 224, num_classes: int = 1000) -> list[Recipe]:
    """``count`` whole networks drawn log-uniformly from the box the grid spans (input side
    between its smallest and largest, w between its widths, d in `BOX_DEPTHS`), seeded: the
    calibration of a gp correction, which must see the shapes users ask about."""
    import random

    rng = random.Random(seed)
    sides, widths = list(sides), list(widths)

    def log_uniform(lo: float, hi: float) -> float:
        return round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 4)

    out: list[Recipe] = []
    for _ in range(count * 20):
        if len(out) >= count:
            break
        side = int(log_uniform(min(sides), max(sides)))
        recipe = Recipe(r=(side + 0.5) / base_resolution, w=log_uniform(min(widths), max(widths)),
                        d=log_uniform(*BOX_DEPTHS), base_resolution=base_resolution, num_classes=num_classes)
        if recipe not in out:
            out.append(recipe)
    return out


def build_table(measurer: Measurer, *, grid: str = "default", calibration: int | None = None,
                progress: bool = False, seed: int = 0, sides: Iterable[int] | None = None,
                widths: Iterable[float] | None = None, num_classes: int = 1000,
                correction: str = "linear") -> LatencyTable:
    """A table for this machine: the grid's parts, then ``calibration`` whole networks
    (default `DEFAULT_CALIBRATION` of the ``correction``): on the grid for a linear correction,
    drawn from the grid's box (`box_recipes`) for a gp one.

    ``sides`` (input sides in px) and ``widths`` replace the named grid's, e.g. to cover a
    study at base 32 px (parts on 4-32 px maps) rather than ImageNet-sized inputs;
    ``num_classes`` is the classifier the heads are timed with."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {', '.join(GRIDS)}, got {grid!r}")
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    if calibration is None:
        calibration = DEFAULT_CALIBRATION[correction]
    _check_count("calibration recipes", calibration, MIN_GP_POINTS if correction == "gp" else 2)
    grid_sides, grid_widths = GRIDS[grid]
    sides = tuple(grid_sides if sides is None else sides)
    widths = tuple(grid_widths if widths is None else widths)
    if not sides or any(isinstance(x, bool) or not isinstance(x, int) or not 8 <= x <= 1024 for x in sides):
        raise ValueError(f"grid sides must be whole numbers of pixels from 8 to 1024, got {list(sides)}")
    if not widths or any(not (isinstance(x, (int, float)) and 0.05 <= x <= 4) for x in widths):
        raise ValueError(f"grid widths must be multipliers from 0.05 to 4, got {list(widths)}")
    base = max(sides)  # r = side / base stays <= 1 (any base works: the parts depend on the side only)
    table = LatencyTable(measurer.profile())
    table.fill(grid_recipes(sides, widths, base_resolution=base, num_classes=num_classes), measurer,
               progress=progress)
    draw = box_recipes if correction == "gp" else calibration_recipes
    table.calibrate(draw(sides, widths, count=calibration, seed=seed, base_resolution=base, num_classes=num_classes),
                    measurer, progress=progress, kind=correction)
    return table


GRIDS = {"default": (GRID_SIDES, GRID_WIDTHS), "small": (SMALL_GRID_SIDES, SMALL_GRID_WIDTHS)}


# --------------------------------------------------------------------------------------------
# Latency targets


@dataclass(frozen=True)
class LatencySolution:
    """The recipe meeting a latency target as closely as the rounding allows (µs): ``below``
    and ``above`` are the adjacent achievable latencies, built by ``recipe_below/above``."""

    recipe: Recipe
    target_us: float
    achieved_us: float
    below_us: float
    above_us: float
    knob: float
    recipe_below: Recipe
    recipe_above: Recipe

    @property
    def relative_error(self) -> float:
        return self.achieved_us / self.target_us - 1.0


def check_latency_ms(ms: object) -> float:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"the latency budget must be a positive number of milliseconds, got {ms!r}")
    if ms > 1e6:
        raise ValueError(f"a latency budget of {ms:g} ms is over 16 minutes; give milliseconds")
    return float(ms)


def solve_latency(target_us: float, latency: Callable[[Recipe], float], make: Callable[[float], Recipe],
                  lo: float, hi: float, *, what: str, low_limit: str, high_limit: str) -> LatencySolution:
    """The knob in [lo, hi] whose ``latency(make(knob))`` (µs) is closest to ``target_us``."""
    from tinyscale.space.steps import solve_steps

    check_latency_ms(target_us / 1000.0)
    sol = solve_steps(float(target_us), latency, make, lo, hi, what=what, low_limit=low_limit,
                      high_limit=high_limit, show=lambda us: f"{us / 1000:.4g} ms", kind="latencies")
    return LatencySolution(recipe=make(sol.knob), target_us=float(target_us), achieved_us=sol.achieved,
                           below_us=sol.value_below, above_us=sol.value_above, knob=sol.knob,
                           recipe_below=make(sol.knob_below), recipe_above=make(sol.knob_above))


def solve_width_latency(target_us: float, r: float, d: float, latency: Callable[[Recipe], float], *,
                        rules: str = "tinynet", base_resolution: int = 224, num_classes: int = 1000) -> LatencySolution:
    """The width w at which Recipe(r, w, d) meets ``target_us`` on ``latency`` (µs)."""
    from tinyscale.space.width import W_MAX, W_MIN

    template = Recipe(r=r, w=1.0, d=d, rules=rules, base_resolution=base_resolution, num_classes=num_classes)
    return solve_latency(target_us, latency, lambda w: template.with_(w=w), W_MIN, W_MAX,
                         what=f"width at r={r:g}, d={d:g} ({rules} rules, base {base_resolution} px)",
                         low_limit=f"w={W_MIN:g}, every channel at its minimum", high_limit=f"w={W_MAX:g}")


def mnasnet_reward(accuracy: float, latency_ms: float, target_ms: float, beta: float = MNASNET_BETA) -> float:
    """MnasNet's soft objective ACC · (LAT / T)^β (β = −0.07): a network twice as slow as the
    target pays about 5 % of its accuracy, one twice as fast earns about 5 %."""
    for name, value in (("latency", latency_ms), ("target", target_ms)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number of milliseconds, got {value!r}")
    return float(accuracy) * (float(latency_ms) / float(target_ms)) ** beta


# --------------------------------------------------------------------------------------------
# Studies


def study_table(directory: str | os.PathLike, device: str | os.PathLike | None = None) -> LatencyTable | None:
    """The device table to judge a study's trials by: ``device`` if given, else the one the
    study keeps (``DIR/latency.json``), else None."""
    if device is not None:
        return LatencyTable.load(device)
    path = Path(directory) / STUDY_FILE
    return LatencyTable.load(path) if path.is_file() else None


def keep_with_study(directory: str | os.PathLike, table: LatencyTable) -> Path:
    """Store ``table`` as the study's device table (the trials' latencies are predicted from
    it whenever they are read, so they cannot disagree with the table kept beside them)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return table.save(path / STUDY_FILE)


def trial_latencies(trials, table: LatencyTable) -> dict[int, float]:
    """Trial number -> predicted latency (µs) of its recipe on ``table``'s device."""
    return {t.number: table.predict_us(t.recipe) for t in trials}
