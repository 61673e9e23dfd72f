"""The typed records that flow from the study engine to the fit stage.

Optuna's split: a `StudyConfig` says what was asked, a `Trial` says what happened to one
sampled recipe, and the storage (`tinyscale.study.store`) says where both are kept. These types are
pure data so Pareto selection, GP fits and the UI can be tested on hand-made trials.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

from tinyscale.space.recipe import Recipe


class TrialState(str, Enum):
    """The one list of trial states (the store's CHECK constraint and the CLI's choices are built
    from it). A str enum: a state compares equal to its stored string."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


TRIAL_STATES: tuple[str, ...] = tuple(s.value for s in TrialState)
MAX_SEED = 2**32 - 1  # seeds reach torch, NumPy and SQLite; each takes this range


def check_seed(value: object, name: str = "seed") -> int:
    """A seed as an int in 0..MAX_SEED (ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"{name} must be an integer from 0 to {MAX_SEED}, got {value!r}")
    return value


@dataclass(frozen=True)
class StudyConfig:
    """What a study asks: the data, the search space, the FLOPs window and the training budget.

    Resuming a study with a different config is an error, so every field that changes what a
    trial means belongs here.
    """

    data: str  # "fashion-mnist", "generated", or a path to a class-per-folder dataset
    rules: str = "tinynet"
    base_resolution: int = 32
    num_classes: int = 10
    window: tuple[float, float] = (0.05, 1.0)  # FLOPs ratio window [c_min, c_max]
    r_range: tuple[float, float] = (0.35, 1.0)
    d_range: tuple[float, float] = (0.35, 1.5)
    sampling: str = "sobol"  # "sobol" or "random" (log-uniform either way)
    seed: int = 0
    # Who proposes the trials: "sobol" (the sampling stream) or "botorch" (the stream's first
    # init_trials recipes, then an acquisition on the accuracy surface; see tinyscale.study.samplers.base).
    sampler: str = "sobol"
    init_trials: int | None = None  # botorch only
    steps: int = 300  # training steps per trial (per rung-0 run under the halving schedule)
    batch_size: int = 64
    # Seeded subsets of the data (None = all): brief trials do not need all of a big dataset.
    train_size: int | None = None
    val_size: int | None = None
    extra: dict = field(default_factory=dict)  # trainer settings beyond the above
    # How trials train: "uniform" (every recipe ``steps`` steps) or "halving" (rungs of
    # ``steps * eta**k`` steps, k = 0..rungs, the best 1/eta promoted; tinyscale.study.halving).
    schedule: str = "uniform"
    eta: int = 3
    rungs: int = 2
    # When several workers decide what trains next: "async" as runs finish (workers never wait;
    # the study depends on which run finishes first) or "ordered" on a clock of step-units (the
    # same study however fast each run is; tinyscale.study.ordering).
    promotion: str = "async"
    # An ordered study's clock charges a run steps x c^clock_exponent (None: the default,
    # tinyscale.study.ordering.CLOCK_EXPONENT, a CPU core's); fixed with the clock when it is made.
    clock_exponent: float | None = None

    def __post_init__(self) -> None:
        check_seed(self.seed)  # before anything seeds a generator with it

    def recipe(self, r: float, w: float, d: float) -> Recipe:
        """A recipe in this study's context."""
        return Recipe(r=r, w=w, d=d, rules=self.rules, base_resolution=self.base_resolution,
                      num_classes=self.num_classes)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["window"] = list(self.window)
        out["r_range"] = list(self.r_range)
        out["d_range"] = list(self.d_range)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> StudyConfig:
        data = dict(data)
        for key in ("window", "r_range", "d_range"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


BOX_AXES = ("r_range", "d_range")


def box_widening(stored: StudyConfig, asked: StudyConfig) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """The axes ``asked`` widens the sampled box on (name -> (stored range, asked range)) when it
    differs from ``stored`` in nothing else; {} when another field differs too (a different
    study). ValueError when a range would narrow: trials outside it would lose their meaning."""
    if any(getattr(stored, f) != getattr(asked, f) for f in stored.to_dict() if f not in BOX_AXES):
        return {}
    widened = {}
    for name in BOX_AXES:
        (lo, hi), (new_lo, new_hi) = getattr(stored, name), getattr(asked, name)
        if (lo, hi) == (new_lo, new_hi):
            continue
        if new_lo > lo or new_hi < hi:
            raise ValueError(f"--{name.replace('_', '-')} {new_lo:g},{new_hi:g} narrows the study's {lo:g},{hi:g}: a "
                             "resumed study's box can only widen (its trials must stay inside it)")
        widened[name] = ((lo, hi), (new_lo, new_hi))
    return widened


def describe_box_widening(entry: dict) -> str:
    """One entry of a study's box history (`Study.box_extensions`) as a line of text."""
    axes = "; ".join(f"{k} {w['from'][0]:g},{w['from'][1]:g} -> {w['to'][0]:g},{w['to'][1]:g}"
                     for k, w in entry.items() if k in BOX_AXES)
    return f"widened at trial {entry['from_trial']}: {axes}" + (f" ({entry['reason']})" if entry.get("reason") else "")


@dataclass(frozen=True)
class Trial:
    """One sampled recipe and what happened when it was trained."""

    number: int
    recipe: Recipe
    state: TrialState
    macs: int
    params: int
    ratio: float  # macs / baseline macs in the study's context
    accuracy: float | None = None  # held-out top-1, in [0, 1]
    loss: float | None = None  # held-out cross-entropy
    steps: int | None = None
    images_seen: int | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    images_per_second: float | None = None
    reason: str | None = None  # why a failed trial failed
    proposed_by: str | None = None  # the sampler that chose the recipe ("sobol", "random", "botorch")
    # The rung this run trained at (0 unless the study trains in rungs: the same recipe, number
    # and seed trained again for steps * eta**rung steps; tinyscale.study.halving).
    rung: int = 0
    device: str | None = None  # where it trained (cpu, cuda, cuda:N); None in stores before version 3
    precision: str | None = None  # fp32, bf16 or fp16; None in stores before version 3
    # The step this run continued from (a shorter run's trunk, lr_schedule wsd); 0 = from scratch.
    # It trained ``steps - start_step`` steps.
    start_step: int = 0
