"""A study's configuration resolved once, before anything runs: `StudyPlan`.

Everything that trains a study's recipes (the study itself, `compare`, `fidelity`, `export
--train-steps`) needs the same four things derived from a `StudyConfig`: a valid search
space, the trainer settings, how workers load the data, and the data checked against the
config. `StudyPlan.resolve` derives and checks them in one place, so a bad config is one clear
error before a directory is created or a worker starts, and the runner consumes the plan as
it is. The demo's config lives here too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from tinyscale.limits import MAX_BATCH, MAX_STEPS, check_count, check_number
from tinyscale.study.executors import DataSpec, worker_data
from tinyscale.study.halving import check_schedule
from tinyscale.study.ordering import check_promotion
from tinyscale.study.trial import StudyConfig
from tinyscale.train.config import TrainConfig, comparable_settings, setting_changes

# Data specs that are not paths: `tinyscale.data.datasets.NAMED_DATASETS`, spelled out here so
# that resolving a config loads no torch.
NAMED_DATA = ("fashion-mnist", "imagenette", "generated")

# The README's main job: a study on Fashion-MNIST that finishes on 2 cores in a few minutes
# (measured numbers in benchmarks/RESULTS.md). It runs on
# `tinyscale.study.executors.default_workers()`: one single-threaded process per core.
DEMO_TRIALS = 24  # the uniform demo's trials (sessions 1-11; experiments that re-run it)
# The demo's step budget: what the halving study measured against the uniform demo spent
# (experiments/demo_halving.py: 23 recipes x 134 steps, 10 x 402, 3 x 1,206), as step-units so
# that every machine buys the same runs; 10,720 is 1.12x the uniform demo's 24 x 400.
DEMO_BUDGET_STEPS = 23 * 134 + 10 * 402 + 3 * 1206


def demo_config() -> StudyConfig:
    """The default study: the demo's data, space and trainer (`uniform_demo_config`) in rungs.

    Rung 0 trains 134 steps, each rung trains the best third of the one below for 3x the steps
    (134 / 402 / 1,206), promoted runs retrain at their length (cosine schedule; continuing from
    the rung below ranked worse on the demo's check recipes, RESULTS "halving"), and the fit
    reads every rung. Measured against the uniform demo at its own study time
    (experiments/demo_halving.py, protocol fixed before its runs): recipes +0.71 +- 0.07 points
    better over c = 1/2..1/16 on three paired seeds of 4,824-step training; the rule fixed
    beforehand switched the demo when the margin was >= 0 and the whole demo stayed <= 10 min.

    Promotions are ordered (`tinyscale.study.ordering`): decided as runs finish, the demo's
    recipes changed with the machine's load (two runs put the ridge at 1/8 at r 1, d 0.35 and
    at r 0.70, d 0.92); on its clock the same worker count gives the same study, for about 1.06x
    the time on 2 workers (benchmarks/bench_ordered.py).
    """
    return replace(uniform_demo_config(), schedule="halving", steps=134, eta=3, rungs=2, promotion="ordered")


def uniform_demo_config() -> StudyConfig:
    """The demo until session 11, and the data, space and trainer of today's: Fashion-MNIST at
    base resolution 32, FLOPs window 0.04-0.6 of B0, every trial 400 steps (`DEMO_TRIALS` of them).

    400 steps per trial, not 200: brief runs must rank recipes as longer training does, and
    200 steps left accuracy flat in c with seed spreads as large as any architecture effect
    (shared/reference/proxy-check.md); the rank agreement of 400 against 1600 steps is measured
    by experiments/proxy_steps.py (RESULTS.md, "proxy"). 5,000 held-out images keep the
    evaluation's own noise well under a point (binomial sd at 80 %: 0.57 points; 0.89 at 2,000).
    The window 0.04-0.6 covers the budgets the demo answers for (1/16 to 1/2 of B0) with room
    on both sides; trial time grows with c, and sampling up to 1.0 spent half the study's CPU on
    networks above every budget it is asked about (24 trials at 400 steps were on course for 15 min).

    Residual branches start at zero (``zero_init_residual``): in a screen of trainer settings on
    recipes the demo never trains (experiments/proxy_levers.py, RESULTS "proxy"), it cut the seed
    sd of 400-step top-1 from 0.92 to 0.63 points and lifted the deep, slow starters (one recipe
    70 -> 81 %), the bias that made the 400-step proxy rank deep recipes last.

    Trials train on all 60,000 training images, not a 12,800-image subset: a step costs the same
    either way (64 images), and on recipes the demo never trains (experiments/proxy_data.py,
    RESULTS "proxy") 400-step runs on all the data ranked recipes like 1,600-step training on all
    the data at a mean rho of +0.76 against +0.67 from the subset, with 1.04x the time per run.
    """
    return StudyConfig(data="fashion-mnist", base_resolution=32, num_classes=10, window=(0.04, 0.6),
                       steps=400, batch_size=64, train_size=None, val_size=5000, seed=0,
                       extra={"zero_init_residual": True})


def check_config_numbers(config: StudyConfig) -> None:
    """ValueError naming the first count or range of ``config`` (one read back from a file) that
    is not a number of its kind within `tinyscale.limits`: what every trial is sized by."""
    check_count("steps", config.steps, 1, MAX_STEPS)
    check_count("batch_size", config.batch_size, 1, MAX_BATCH)
    for name in ("train_size", "val_size", "init_trials"):
        if getattr(config, name) is not None:
            check_count(name, getattr(config, name), 1)
    for name in ("window", "r_range", "d_range"):
        pair = getattr(config, name)
        if len(pair) != 2 or not 0 < check_number(name, pair[0], 0) <= check_number(name, pair[1], 0):
            raise ValueError(f"{name} must be two numbers 0 < low <= high, got {pair!r}")
    if not isinstance(config.extra, dict):
        raise ValueError(f"extra must be an object of trainer settings, got {config.extra!r}")
    check_schedule(config.schedule, config.eta, config.rungs, config.steps, MAX_STEPS)
    check_promotion(config.promotion, config.clock_exponent)


def trial_seed(study_seed: int, number: int) -> int:
    """The training seed of trial ``number`` (fixed, so a re-run trial trains identically)."""
    return study_seed * 100_003 + number


def data_spec(config: StudyConfig) -> DataSpec:
    """How workers load this study's data."""
    from tinyscale.space.recipe import resolution_for

    # Folder images are decoded once, at the largest input any trial uses or at the base
    # resolution if that is larger (comparisons train r = 1 baselines on the same data).
    decode = resolution_for(max(1.0, config.r_range[1]), config.base_resolution)
    return DataSpec(config.data, config.seed, config.train_size, config.val_size, decode)


def check_data(config: StudyConfig):
    """Load the data once in the driver: a missing dataset or a class-count mismatch is an
    error before any trial starts. Returns the loaded `ImageData`."""
    data = worker_data(data_spec(config))  # cached: an in-process executor reuses it
    if len(data.train_images) < 2:
        raise ValueError(f"{config.data} leaves {len(data.train_images)} training image(s) after the held-out split; "
                         "training needs at least 2 (BatchNorm cannot learn from one)")
    if data.num_classes != config.num_classes:
        raise ValueError(
            f"{config.data} has {data.num_classes} classes but the study is configured for {config.num_classes}"
        )
    return data


def resolve_data(spec: str) -> str:
    """A dataset path as an absolute path (a study is resumed and exported from anywhere);
    the named datasets as they are."""
    if not isinstance(spec, str) or spec in NAMED_DATA or not spec.strip():
        return spec
    return str(Path(spec).expanduser().resolve())


@dataclass(frozen=True)
class StudyPlan:
    """A `StudyConfig` resolved for training: its trainer settings and how workers load its
    data, both checked (`resolve`)."""

    config: StudyConfig
    train: TrainConfig
    data: DataSpec

    @classmethod
    def resolve(cls, config: StudyConfig, *, space: bool = True, load: bool = True) -> StudyPlan:
        """Check ``config`` and derive the rest. ``space``: check the search space and sampler
        options too (what a study samples from; commands that only retrain stored recipes skip
        it). ``load``: load the data once and check it against the config."""
        for name, limit in (("steps", MAX_STEPS), ("batch_size", MAX_BATCH)):
            value = getattr(config, name)
            if isinstance(value, (int, float)) and value > limit:  # a config from elsewhere sizes every trial
                raise ValueError(f"{name} must be at most {limit:,}, got {value:,}")
        check_schedule(config.schedule, config.eta, config.rungs, config.steps, MAX_STEPS)
        check_promotion(config.promotion, config.clock_exponent)
        if space:
            from tinyscale.study.samplers.base import check_space

            check_space(config)
        plan = cls(config, TrainConfig.from_study(config), data_spec(config))
        if load:
            check_data(config)
        return plan

    def check_trainer(self, stored: dict | None, where: str, remedy: str) -> None:
        """ValueError when ``stored`` trainer settings (a study's record) differ from this plan's:
        trials trained under other settings are not comparable. ``where`` names the store,
        ``remedy`` says what to do."""
        diffs = [] if stored is None else setting_changes(stored, self.train)
        if diffs:
            raise ValueError(f"{where} was trained with other trainer settings ({'; '.join(diffs)}); {remedy}")

    def trainer_record(self) -> dict:
        """The resolved trainer settings as a study records them when it starts."""
        return comparable_settings(self.train)
