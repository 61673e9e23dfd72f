"""What one comparison asks (`CompareSettings`: targets, strategies, seeds, training budget), how
it is parsed from the command line, stored, and defaulted from a study."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyscale.evaluate.compare.strategies import BUDGETS, DEFAULT_STRATEGIES, REGISTRY
from tinyscale.space.width import check_ratio
from tinyscale.study.trial import StudyConfig

DEFAULT_RATIOS: tuple[float, ...] = (0.5, 0.25, 0.125, 0.0625)
# Default compare budget: STEP_FACTOR x the steps of the study's longest runs (its top rung; every
# run of a uniform study). A comparison as brief as the study's runs only re-measures its proxy (on
# a held-out colour set a shallow, wide recipe led EfficientNet by ~10 points at 450 steps while its
# own accuracy fell with c; issue 25), so it trains 4x longer, the length the demo's and
# Imagenette's halving comparisons use (4,824 and 3,600 steps). Until session 12 it was 1.5x the
# study's steps per trial (600 on the uniform demo's 400): `--steps 600` reproduces those runs.
STEP_FACTOR = 4


def parse_ratios(text: str | Sequence[float], budget: str = "macs") -> tuple[float, ...]:
    """'0.5,0.25' -> (0.5, 0.25); every ratio a positive finite number, no duplicates. Under a
    latency budget the targets are milliseconds ('2,4.5')."""
    what = "latency target" if budget == "latency" else "ratio"
    items: Iterable = text.split(",") if isinstance(text, str) else text
    ratios: list[float] = []
    for item in items:
        raw = item.strip() if isinstance(item, str) else item
        if raw == "":
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {raw!r} is not a number") from None
        if budget == "latency":
            from tinyscale.latency import check_latency_ms

            check_latency_ms(value)
        else:
            check_ratio(value)
        if value in ratios:
            raise ValueError(f"{what} {value:g} is listed twice")
        ratios.append(value)
    if not ratios:
        raise ValueError("give at least one latency target in ms (e.g. --latency-ms 2,4)" if budget == "latency"
                         else "give at least one target ratio (e.g. --ratios 0.5,0.25)")
    return tuple(ratios)


def parse_strategies(text: str | Sequence[str]) -> tuple[str, ...]:
    """'gp,efficientnet' -> ('gp', 'efficientnet'); unknown names are an error listing the known."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names: list[str] = []
    for item in items:
        name = item.strip().lower()
        if not name:
            continue
        if name not in REGISTRY:
            raise ValueError(f"unknown strategy {item.strip()!r}; choose from {', '.join(REGISTRY)}")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"give at least one strategy from {', '.join(REGISTRY)}")
    return tuple(names)


@dataclass(frozen=True)
class CompareSettings:
    """What one comparison asks: target ratios, strategies, seeds and the shared training budget.

    ``budget`` says what the targets in ``ratios`` are: MACs ratios c (``macs``) or latencies
    in ms on a device table (``latency``).

    ``steps``/``batch_size`` are the budget every strategy gets; the rest of the trainer
    settings come from the study. Cells trained under another budget are not comparable, so a
    resume with a different budget is an error (ratios, strategies and seeds may grow).
    """

    ratios: tuple[float, ...] = DEFAULT_RATIOS
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 600
    batch_size: int = 64
    threads: int | None = None  # torch threads per run; a runtime choice, not part of the budget
    budget: str = "macs"

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        object.__setattr__(self, "ratios", parse_ratios(list(self.ratios), self.budget))
        object.__setattr__(self, "strategies", parse_strategies(list(self.strategies)))
        seeds = tuple(self.seeds)
        if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f"seeds must be a non-empty list of non-negative integers, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds!r}")
        object.__setattr__(self, "seeds", seeds)
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")


def settings_to_dict(settings: CompareSettings) -> dict:
    """The settings as the store keeps them (JSON-ready); `settings_from_dict` reads them back."""
    out = {"ratios": list(settings.ratios), "strategies": list(settings.strategies),
           "seeds": list(settings.seeds), "steps": settings.steps, "batch_size": settings.batch_size,
           "threads": settings.threads}
    if settings.budget != "macs":  # MACs settings read as before latency budgets existed
        out["budget"] = settings.budget
    return out


def settings_from_dict(data: dict) -> CompareSettings:
    """Stored settings back as `CompareSettings` (JSON turned the tuples into lists)."""
    return CompareSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def read_study_config(study_dir: Path) -> StudyConfig:
    """The study's configuration (ValueError when the directory holds no readable study)."""
    from tinyscale.study.store import Study

    study = Study.open(study_dir)
    try:
        return study.config
    finally:
        study.close()


def default_steps(config: StudyConfig, top_rung: int = 0) -> int:
    """The default training budget of a comparison: `STEP_FACTOR` times the steps of the study's
    longest runs, those of rung ``top_rung`` (`tinyscale.study.store.Study.top_rung`; 0 for a
    uniform study, whose every run trains ``config.steps``)."""
    from tinyscale.study.halving import rung_steps

    return STEP_FACTOR * rung_steps(config.steps, config.eta, top_rung)


def default_settings(
    study_dir: str | Path,
    *,
    ratios: str | Sequence[float] = DEFAULT_RATIOS,
    strategies: str | Sequence[str] = DEFAULT_STRATEGIES,
    seeds: int = 3,
    first_seed: int = 0,
    steps: int | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    budget: str = "macs",
) -> CompareSettings:
    """Settings for a study: seeds first_seed..first_seed+seeds-1; steps and batch size default
    from the study; ``ratios`` are the targets in ``budget``'s units (ratios c, or ms under
    ``latency``)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"the number of seeds must be a positive integer, got {seeds!r}")
    if isinstance(first_seed, bool) or not isinstance(first_seed, int) or first_seed < 0:
        raise ValueError(f"the first seed must be a non-negative integer, got {first_seed!r}")
    from tinyscale.study.store import Study

    with Study.open(study_dir) as study:
        config, top_rung = study.config, study.top_rung
    return CompareSettings(
        ratios=parse_ratios(ratios, budget),
        strategies=parse_strategies(strategies),
        seeds=tuple(range(first_seed, first_seed + seeds)),
        steps=default_steps(config, top_rung) if steps is None else steps,
        batch_size=config.batch_size if batch_size is None else batch_size,
        threads=threads,
        budget=budget,
    )


def default_latency_targets(study_dir: str | Path, table, ratios: Sequence[float] = DEFAULT_RATIOS) -> tuple[float, ...]:
    """Latency targets where a MACs comparison would look: the predicted latency (ms, 3
    significant digits) on ``table`` of the study's fitted recipe at each of ``ratios``."""
    from tinyscale.fit.solve import RecipeSolver

    solver = RecipeSolver.load(study_dir)
    out: list[float] = []
    for c in ratios:
        ms = float(f"{table.predict_us(solver.solve(c).recipe) / 1000.0:.3g}")
        if ms not in out:
            out.append(ms)
    return tuple(out)
