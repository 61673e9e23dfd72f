"""What the design assistant computes from a study, without Streamlit.

The page (`app/main.py`) only lays out what these functions return; each one is a short
composition of the stages' public functions (study store, Pareto selection, GP fit, recipe
solver, baselines), so the numbers on screen are the library's numbers and can be tested here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from tinyscale.assistant.fit_source import FitSource
from tinyscale.study.trial import StudyConfig, Trial

# Targets the slider offers: the study's FLOPs window widened by this factor on each side (so
# a user can see the extrapolation warning), cut to the ratios the solver can build.
SLIDER_SPAN = 2.0
CURVE_POINTS = 33  # targets along the r/w/d curves (solver calls, computed once per fit)
SLIDER_STEPS = 121  # log-spaced stops of the slider


def curve(solver, config: StudyConfig, points: int = CURVE_POINTS, span: float = SLIDER_SPAN) -> list:
    """Solver answers on a log grid over the study's window widened by ``span``; targets the
    rule set cannot build at the GP's (r, d) (width clamped) are left out."""
    lo, hi = config.window
    answers = []
    for c in np.geomspace(lo / span, hi * span, points):
        answer = solver.solve(float(c))
        if not answer.width_clamped:
            answers.append(answer)
    if not answers:
        raise ValueError(f"no target ratio around the study's window {lo:g}..{hi:g} can be built")
    return answers


def slider_stops(answers: list, steps: int = SLIDER_STEPS) -> list[float]:
    """Log-spaced targets between the cheapest and dearest buildable targets of ``curve``,
    rounded to 4 significant digits so they read well on the slider."""
    lo, hi = min(a.target for a in answers), max(a.target for a in answers)
    return sorted({float(f"{c:.4g}") for c in np.geomspace(lo, hi, steps)})


def nearest_stop(stops: list[float], c: float) -> float:
    """The slider stop closest to c in log space."""
    return min(stops, key=lambda s: abs(math.log(s / c)))


def efficientnet_curve(config: StudyConfig, targets) -> list:
    """EfficientNet compound scaling (φ solved against the counted cost) at each target it
    can reach, in the study's context."""
    from baselines import scale

    out = []
    for c in targets:
        try:
            out.append(scale("efficientnet", float(c), base_resolution=config.base_resolution,
                             num_classes=config.num_classes))
        except ValueError:
            continue  # below the 8 px minimum input: compound scaling cannot shrink that far
    return out


def tinynets(config: StudyConfig) -> list:
    """The published TinyNet-A..E recipes at their counted ratio in the study's context; those
    the base resolution cannot build (TinyNet-E's r = 0.475 is 7 px at base 16) are left out,
    as compound scaling's are, rather than costing the page its recipe curves."""
    from baselines import PUBLISHED, scale

    out = []
    for name in PUBLISHED:
        try:
            out.append(scale(name, base_resolution=config.base_resolution, num_classes=config.num_classes))
        except ValueError:
            continue  # below the 8 px minimum input
    return out


def noise_sentence(diag, across: bool = False) -> str:
    """Where the surface's observation noise came from, in one sentence (``across``: the surface
    reads every rung, which cannot take a seed noise measured on one rung's runs)."""
    if diag.noise == "measured":
        return (f"Its noise is fixed at the seed noise measured by retraining trials with other seeds "
                f"({diag.noise_sd_points:.2f} points).")
    if across:
        return (f"Its noise ({diag.noise_sd_points:.2f} points, one for every rung) was inferred by the fit: a "
                "measured seed noise is of one rung's runs, so a fit across rungs cannot be fixed at it. "
                "`tinyscale fidelity DIR` still measures it, with the longest runs' rank check.")
    return (f"Its noise ({diag.noise_sd_points:.2f} points) was inferred by the fit, not measured: a value far "
            "below the real seed noise means the surface follows lucky seeds. Measure it with `tinyscale "
            "fidelity DIR`, then `tinyscale fit DIR`.")


def export_provenance(study_dir: str | os.PathLike, answer, source: FitSource) -> dict:
    """What recipe.json records about where a downloaded recipe came from."""
    fit = source.solver.fit
    record = {"saved": source.saved, "created": fit.created, "models": list(dict.fromkeys(fit.data.numbers)),
              "c_range": list(fit.c_range)}
    fidelity = getattr(fit.surface, "fidelity", None)  # a fit across rungs: a recipe's runs at several lengths
    if fidelity is not None:
        record["runs"] = [[n, k] for n, k in zip(fit.data.numbers, fidelity.rungs)]
        record["ridge_rung"] = fidelity.target
    return {"study": str(Path(study_dir).resolve()), "fit": record, "query": answer.to_dict()}


@lru_cache(maxsize=8)
def _bundle(recipe, formats: tuple[str, ...], provenance_json: str):
    from tinyscale.export import build_export

    return build_export(recipe, formats=formats, provenance=json.loads(provenance_json))


def export_file(recipe, name: str, provenance: dict) -> bytes:
    """One file of the library's export of ``recipe`` (random initial weights): ``recipe.json``,
    ``model.safetensors`` or ``model.onnx``. Built on first request and kept for the next few
    recipes, so the page's download buttons cost nothing until clicked.

    Raises ValueError for an unknown file or ONNX without the export extras.
    """
    from tinyscale.export import MANIFEST, ONNX, WEIGHTS, onnx_available

    if name not in (MANIFEST, WEIGHTS, ONNX):
        raise ValueError(f"the export holds {MANIFEST}, {WEIGHTS} and {ONNX}; got {name!r}")
    if name == ONNX:
        reason = onnx_available()
        if reason:
            raise ValueError(reason)
    formats = ("safetensors", "onnx") if name == ONNX else ("safetensors",)
    bundle = _bundle(recipe, formats, json.dumps(provenance, sort_keys=True))
    return bundle.files[name]


@dataclass(frozen=True)
class Curves:
    """Everything the r/w/d figure and the slider need that does not change with the slider."""

    answers: list  # solver answers along the buildable targets
    stops: list[float]  # the slider's targets
    efficientnet: list  # compound-scaling recipes along the slider's range
    tinynets: list  # the published TinyNet-A..E


def curves(source: FitSource, config: StudyConfig) -> Curves:
    """The slider-independent half of the page, computed once per fit."""
    answers = curve(source.solver, config)
    stops = slider_stops(answers)
    # ~40 compound-scaling points are a smooth curve; every slider stop would be 3x the work.
    return Curves(answers, stops, efficientnet_curve(config, stops[:: max(1, len(stops) // 40)]), tinynets(config))


def accuracy_selection(source: FitSource | None, completed: list[Trial]):
    """The Pareto selection the accuracy plot draws, and a note for the user (or None).

    With a fit: the selection that fit made, as it saved it (``selection_rows``, and the models
    it used, ``data.numbers``), never a new one, so the highlighted models are exactly those
    the curves were fitted on. Trials the fit did not rank (completed after it) are listed in
    ``skipped``, not drawn. Without a fit: the selection `tinyscale fit` would make now
    (the Pareto method's default K). Raises ValueError when nothing can be ranked.
    """
    from tinyscale.fit.gp import default_pareto_k, usable_trials
    from tinyscale.fit.pareto import ParetoEntry, ParetoSelection, select

    if source is None:
        k = default_pareto_k(len(usable_trials(completed)))
        return select(completed, k), (
            f"No fit yet: highlighted are the models `tinyscale fit --method pareto` would select now (k={k}).")
    fit = source.solver.fit
    # A fit of a study in rungs ranked runs, each (number, rung); one that read several rungs
    # holds a recipe once per rung it ran at, and the plot draws ``completed`` (its fit rung's).
    per_run = bool(fit.selection_rows) and all("rung" in row for row in fit.selection_rows)

    def key(number: int, rung: int):
        return (number, rung) if per_run else number

    rows = {key(row["number"], row.get("rung", 0)): row for row in fit.selection_rows}
    used = set(fit.data.numbers)
    entries, skipped = [], []
    for t in completed:
        row = rows.get(key(t.number, t.rung))
        if row is None:
            skipped.append((t.number, "completed after the fit: not ranked"))
            continue
        selected = bool(row["selected"]) if "selected" in row else t.number in used
        entries.append(ParetoEntry(trial=t, rank=int(row["rank"]), selected=selected, niche=row.get("niche"),
                                   distance=row.get("distance"), reason=str(row["reason"])))
    notes = []
    if skipped:
        notes.append(f"{len(skipped)} trial(s) completed after the fit are not drawn; the plot shows the fit's "
                     "selection")
    if per_run:  # the runs the fit used at the rungs drawn (its other rungs' runs are not drawn here)
        drawn_rungs = {t.rung for t in completed}
        used_here = {(row["number"], row["rung"]) for row in fit.selection_rows
                     if row.get("selected", True) and row["rung"] in drawn_rungs}
        missing = sorted(n for n, _ in used_here - {(t.number, t.rung) for t in completed})
    else:
        missing = sorted(used - {t.number for t in completed})
    if missing:
        notes.append(f"the fit used trial(s) {', '.join(map(str, missing))}, which the study does not hold as completed")
    return ParetoSelection(entries=tuple(entries), k=fit.k, skipped=tuple(skipped)), ("; ".join(notes) or None)


@dataclass(frozen=True)
class Trust:
    """What the page shows under "How far to trust this recipe": `tinyscale fidelity`'s stored
    verdict in plain words with its numbers, or (``verdict`` None) why there is none and the
    command that measures it."""

    verdict: str | None  # "trustworthy", "weak", "untrustworthy", or None when not measured
    summary: str  # plain words
    metrics: tuple[tuple[str, str, str], ...]  # (label, value, help)
    reasons: tuple[str, ...]  # one sentence per check, with its numbers
    note: str | None  # e.g. the study gained trials since the check, or the file is unreadable
    command: str  # what measures (or re-measures) it


def stop_rule_words(rungs) -> str | None:
    """What a study in rungs measured of its own ranking as runs lengthened (the stop rule's rho
    between each rung and the next, `tinyscale.study.halving.RungSummary`), in one sentence; None
    when no rung has been compared with the next yet."""
    from tinyscale.study.halving import MIN_PAIRS, SETTLED_RHO

    judged = [r for r in rungs or () if r.agreement is not None and r.agreement.rho is not None]
    if not judged:
        return None
    pairs = "; ".join(f"rung {r.rung} ({r.steps:,} steps) against rung {r.rung + 1}: ρ {r.agreement.rho:+.2f} over "
                      f"{r.agreement.pairs} recipes" for r in judged)
    settled = [r.rung for r in judged if r.agreement.settled]
    chance = [r for r in judged if r.agreement.chance]
    if chance and not settled:  # promotions by noise: say so, and what would make them count
        r = chance[0]
        pairs += (f". Rung {r.rung} ({r.steps:,} steps) ranks no better than chance against rung {r.rung + 1} "
                  f"(p = {r.agreement.p_value:.2f}): its promotions cannot be told from random picks, and longer "
                  "runs there (--steps) are what would make them count")
    if settled:
        return (f"The study's stop rule: {pairs}. Rung {settled[0]} ranks like the next (ρ ≥ {SETTLED_RHO} over "
                f"≥ {MIN_PAIRS} recipes): longer training stopped changing the ranking there.")
    return (f"The study's stop rule: {pairs}. Not settled (ρ ≥ {SETTLED_RHO} over ≥ {MIN_PAIRS} recipes): the "
            "ranking still changed as runs lengthened, so the recipe rests on its longest runs, which no "
            "longer run of the study has checked (`tinyscale fidelity` checks them).")


def trust(study_dir: str | os.PathLike, completed: int | None = None,
          predicted: dict[int, float] | None = None, rungs=None) -> Trust:
    """The stored fidelity check of a study, for the page (never raises for a missing or
    damaged file; ``completed``: the study's completed trials now, to flag a stale check (with
    ``rungs``, each rung's completed recipes are counted instead);
    ``predicted``: the accuracy surface's accuracy per trial number, `ScalingFit.trial_accuracy`,
    to show how the surface ranks the check's recipes beside the single brief runs; ``rungs``:
    a study in rungs' `RungSummary` list, whose stop rule is said first)."""
    import tinyscale.evaluate.fidelity as fd

    command = f"tinyscale fidelity {study_dir}"
    stop_rule = stop_rule_words(rungs)
    try:
        f = fd.load_fidelity(study_dir)
    except ValueError as exc:
        return Trust(None, "The stored fidelity check cannot be read.", (), (), str(exc), command)
    if f is None:
        if stop_rule is not None:  # a study in rungs checks its own ranking as it lengthens
            return Trust(None, stop_rule + " The command below measures the seed noise of the longest runs and "
                         f"how they rank against {fd.DEFAULT_FACTOR:g}x longer training.", (), (), None, command)
        return Trust(None, "Not measured yet: whether the study's brief accuracies rank recipes by more than "
                     "seed noise. The command below retrains a few trials with other seeds and about ten "
                     "of them longer, and gives a verdict.", (), (), None, command)
    s, st = f.signal, f.settings
    longer = "longer training" if st is None else f"{st.factor:g}x longer training ({st.long_steps} steps)"
    checked = "the study's brief accuracies" if f.rung == 0 else f"rung {f.rung}'s accuracies"
    at = "the study's steps" if st is None else f"{st.steps} steps" + ("" if f.rung == 0 else f" (rung {f.rung})")
    if rungs is not None:
        completed = {r.rung: r.completed for r in rungs}
    metrics = (
        ("rank agreement ρ", "n/a" if f.rho is None else f"{f.rho:.2f}",
         f"Spearman ρ between {checked} and {longer} on {len(f.pairs)} recipes; "
         f"good ≥ {fd.RHO_GOOD}, FBNetV3 stops at {fd.RHO_FBNETV3}"),
        ("seed noise σ", f"{100 * f.sigma:.2f} pts",
         f"pooled sd of top-1 over seeds at {at} ({len(f.noise)} recipes, {f.sigma_df} df)"),
        ("slope per doubling of c", f"{100 * s.slope:+.2f} pts",
         f"± {100 * s.slope_se:.2f} points" + ("" if s.slope_t is None else f", t = {s.slope_t:.1f}")
         + f", over {s.n} trials"),
        ("spread at matched c", "n/a" if s.residual_ratio is None else f"{s.residual_ratio:.2f} σ",
         f"sd of the residuals around the accuracy curve: {100 * s.residual_sd:.2f} points; "
         f"good ≥ {fd.MATCHED_GOOD} σ"),
        ("variance beyond noise", f"{s.beyond_noise:.0%}", "max(0, 1 − σ² / variance of the brief accuracies)"),
    )
    agreement = fd.model_agreement(f, predicted or {})
    if agreement is not None and agreement.rho is not None:
        metrics += (("surface's rank agreement ρ", f"{agreement.rho:.2f}",
                     f"Spearman ρ between the accuracy surface's prediction (it pools every trial) and {longer} "
                     f"on {agreement.n} of the recipes; their single brief runs: "
                     + ("n/a" if agreement.rho_brief is None else f"{agreement.rho_brief:.2f}")),)
    summary = f"**{f.verdict.capitalize()}**: {f.advice}."
    reasons = f.reasons if stop_rule is None else (*f.reasons, stop_rule)
    return Trust(f.verdict, summary, metrics, reasons, fd.stale_note(f, completed), command)


# ----------------------------------------------------------------------------------- latency


@dataclass(frozen=True)
class Device:
    """A latency table the page offers as a budget, or why it could not be read."""

    name: str
    path: str
    table: object | None  # tinyscale.latency.LatencyTable
    error: str | None = None


def device_tables(study_dir: str | os.PathLike, extra: list[str] | tuple[str, ...] = ()) -> list[Device]:
    """The study's own table (``DIR/latency.json``, from `tinyscale study --latency-table`) and the
    ``extra`` table files (`tinyscale app --latency-table FILE`), each read and validated; a file that
    is not a valid table comes back with its ``error`` instead."""
    from tinyscale.latency import LATENCY_FILE, LatencyTable

    paths = [Path(study_dir) / LATENCY_FILE] if (Path(study_dir) / LATENCY_FILE).is_file() else []
    paths += [Path(p) for p in extra if p]
    out, seen = [], set()
    for path in paths:
        key = str(path.resolve())
        if key in seen:
            continue
        seen.add(key)
        label = "study's table" if path.name == LATENCY_FILE and path.parent == Path(study_dir) else path.name
        try:
            table = LatencyTable.load(path)
        except (ValueError, OSError) as exc:
            out.append(Device(label, str(path), None, str(exc)))
            continue
        p = table.profile
        out.append(Device(f"{label}: {p.cpu}, {p.engine}, {p.threads} thread{'s' if p.threads != 1 else ''}, "
                          f"batch {p.batch}", str(path), table))
    return out


def latency_stops(answers: list, table, steps: int = SLIDER_STEPS) -> list[float]:
    """Log-spaced latency targets (ms, 3 significant digits) between the predicted latencies
    of the cheapest and the dearest recipe along the curve (``curve``'s answers)."""
    lat = [table.predict_us(a.recipe) / 1000.0 for a in answers]
    lo, hi = min(lat), max(lat)
    if not hi > lo:
        return [float(f"{lo:.3g}")]
    return sorted({float(f"{ms:.3g}") for ms in np.geomspace(lo, hi, steps)})


def latency_answer(solver, table, ms: float):
    """(the recipe answer shaped like a ratio query's, the `LatencyAnswer`) for a budget of
    ``ms`` milliseconds on ``table``'s device."""
    ans = solver.solve_latency(ms * 1000.0, table.predict_us)
    return ans.recipe_answer(), ans


def latency_selection(source: FitSource | None, completed: list[Trial], table):
    """Pareto selection on (accuracy, predicted latency on ``table``), with the fit's k (or
    the Pareto method's default), for the accuracy-vs-latency plot."""
    from tinyscale.fit.gp import default_pareto_k, usable_trials
    from tinyscale.fit.pareto import select

    k = (source.solver.fit.k if source is not None else None) or default_pareto_k(len(usable_trials(completed)))
    return select(completed, k, cost=lambda t: table.predict_us(t.recipe))


def comparison_words(study_dir: str | os.PathLike, comparison, symbol: str = "c") -> str:
    """What the Compare tab says under a stored comparison (or, ``comparison`` None, that there
    is none and how to make one): whether it is out of the brief regime, as far as
    `compare --settle-check`'s longer re-runs are stored (nothing when they never ran), and
    whether the study's fit foresaw the order the comparison measured
    (`tinyscale.evaluate.compare.foresight`)."""
    if comparison is None:
        return (f"No comparison yet. `tinyscale compare {study_dir}` trains this study's recipe, the paper's "
                "Pareto-point GP, EfficientNet, uniform and fast (dWr) compound scaling and single-axis "
                "baselines at matched FLOPs with the same trainer, data and seeds (`--budget latency`: at "
                "matched latency on a device table).")
    from tinyscale.evaluate.compare.foresight import fit_foresight
    from tinyscale.evaluate.compare.settle import format_settle_check, stored_settle_check

    foreseen = fit_foresight(study_dir, comparison)  # "" at matched latency or without a surface
    stored = stored_settle_check(study_dir, comparison)
    if stored is None:
        return foreseen
    check, missing = stored
    if missing:
        settle = (f"**settled check**: {missing} of its {check.long_steps:,}-step re-runs have no result yet; "
                  f"`tinyscale compare {study_dir} --settle-check` trains them, and the verdict shows here.")
    else:
        settle = format_settle_check(check, symbol)
    return "\n\n".join(filter(None, (settle, foreseen)))
