"""`tinyscale fidelity`: the statistics on synthetic numbers (Spearman with ties, noise, slope,
verdicts), then the command end to end on a tiny generated study (stored result, resume after an
interruption with the same numbers, seeds apart from the study's), and where the result is
shown (`tinyscale fit`, the app)."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import rankdata

from tinyscale.cli import main
from tinyscale.evaluate.fidelity import (
    FIDELITY_FILE,
    FIDELITY_SEED_OFFSET,
    MATCHED_GOOD,
    describe_stored,
    Fidelity,
    FidelityStore,
    format_fidelity,
    load_fidelity,
    measure,
    save_fidelity,
    spearman,
    spread,
    summarize,
)
from tinyscale.study.trial import StudyConfig

# ------------------------------------------------------------------------------ pure statistics


def test_spearman_with_ties_matches_the_hand_computation():
    a, b = [1, 2, 2, 3, 4], [2, 1, 3, 3, 5]
    # Average ranks: a -> 1, 2.5, 2.5, 4, 5; b -> 2, 1, 3.5, 3.5, 5 (both mean 3).
    assert rankdata(a).tolist() == [1, 2.5, 2.5, 4, 5]
    assert rankdata(b).tolist() == [2, 1, 3.5, 3.5, 5]
    # Deviations (-2, -.5, -.5, 1, 2) and (-1, -2, .5, .5, 2): sum of products 7.25, each sum of
    # squares 9.5, so rho = 7.25 / 9.5 = 29/38. The no-ties shortcut 1 - 6 sum d^2 / (n (n^2 - 1))
    # would give 1 - 27/120 = 0.775 instead.
    assert spearman(a, b) == pytest.approx(29 / 38, abs=1e-12)
    assert spearman([3, 1, 2], [30, 10, 20]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # undefined, not 0
    # 1 - 6 * 2 / (4 * 15): exactly the verdict's RHO_GOOD, not a bit under it, so a ranking this
    # good counts as good (scipy.stats.spearmanr answers 0.7999999999999999).
    assert spearman([1, 2, 3, 4], [1, 2, 4, 3]) == 0.8
    with pytest.raises(ValueError, match="paired"):
        spearman([1, 2], [1, 2, 3])


def _synthetic(kind: str, seed: int = 0, n: int = 24, sigma: float = 0.005) -> Fidelity:
    """A study of n trials over c in [0.05, 1]: "recipe" has a real per-recipe effect at matched c
    (shared by brief and long runs) on top of a trend in log c; "trend" only the trend; "noise"
    neither (brief and long accuracies independent). Every run adds seed noise sigma."""
    rng = np.random.default_rng(seed)
    cs = np.geomspace(0.05, 1.0, n)
    x = np.log2(cs)
    effect = rng.normal(0, 0.02, n) if kind == "recipe" else np.zeros(n)
    if kind == "noise":
        true, true_long = np.full(n, 0.70), np.full(n, 0.75)
    else:
        true, true_long = 0.80 + 0.03 * x + effect, 0.88 + 0.035 * x + effect
    brief = true + rng.normal(0, sigma, n)
    long_ = true_long + rng.normal(0, sigma, n)
    picked = [int(round(i * (n - 1) / 9)) for i in range(10)]
    groups = {i: [brief[i], *(true[i] + rng.normal(0, sigma, 2))] for i in picked[::3]}
    return summarize(dict(enumerate(brief)), {i: long_[i] for i in picked}, groups, dict(enumerate(cs)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_real_recipe_effect_is_trustworthy(seed):
    f = _synthetic("recipe", seed)
    assert f.verdict == "trustworthy", f.reasons
    assert f.rho > 0.9 and f.signal.slope_t > 5 and f.signal.beyond_noise > 0.9
    assert f.signal.residual_ratio > MATCHED_GOOD
    assert f.signal.slope == pytest.approx(0.03, abs=0.006)  # per doubling of c
    assert f.sigma == pytest.approx(0.005, rel=0.6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_is_untrustworthy(seed):
    f = _synthetic("noise", seed)
    assert f.verdict == "untrustworthy", f.reasons
    assert f.signal.beyond_noise < 0.5
    assert "seed noise" in f.advice and "seed noise" in format_fidelity(f)
    assert any("does not rise measurably" in r or "falls" in r for r in f.reasons)


def test_a_trend_in_c_alone_does_not_resolve_the_recipe():
    """Accuracy = f(log c) + seed noise: brief runs rank networks like long runs (ρ near 1, all of
    it from c), but at matched c the spread is the seed noise, so the r/d split that the GPs learn
    is not resolved: at best weak, and the reason says so."""
    for seed in range(3):
        f = _synthetic("trend", seed)
        assert f.rho > 0.9 and f.signal.beyond_noise > 0.9
        assert f.signal.residual_ratio < MATCHED_GOOD
        assert f.verdict == "weak"
        assert "matched c" in f.reasons[0] and "not resolved" in f.reasons[0]
        assert abs(f.rho_matched) < 0.8  # after removing the trend, the brief ranking is mostly noise


def test_pooled_sigma_slope_and_residuals_by_hand():
    c = {n: 2.0 ** (n - 5) for n in range(6)}  # log2 c = -5 .. 0
    resid = [0.01, -0.02, 0.01, 0.01, -0.02, 0.01]
    brief = {n: 0.6 + 0.02 * (n - 5) + resid[n] for n in range(6)}
    groups = {0: [0.5, 0.6], 3: [0.7, 0.7, 0.8]}  # variances 0.005 (1 df) and 1/300 (2 df)
    f = summarize(brief, {0: 0.1, 2: 0.3, 5: 0.2}, groups, c)
    assert f.sigma_df == 3
    assert f.sigma == pytest.approx(math.sqrt((0.005 + 2 / 300) / 3))
    assert [g.sd for g in f.noise] == pytest.approx([math.sqrt(0.005), math.sqrt(1 / 300)])
    x = np.arange(6) - 5.0
    y = np.array([brief[n] for n in range(6)])
    slope, intercept = np.polyfit(x, y, 1)
    rss = float(np.sum((y - intercept - slope * x) ** 2))
    se = math.sqrt(rss / 4 / float(np.sum((x - x.mean()) ** 2)))
    assert f.signal.slope == pytest.approx(slope) and f.signal.slope_se == pytest.approx(se)
    assert f.signal.slope_t == pytest.approx(slope / se)
    quad = np.polyval(np.polyfit(x, y, 2), x)
    assert f.signal.residual_sd == pytest.approx(math.sqrt(float(np.sum((y - quad) ** 2)) / 3))
    assert f.signal.residual_ratio == pytest.approx(f.signal.residual_sd / f.sigma)
    assert f.signal.beyond_noise == pytest.approx(max(0.0, 1 - f.sigma**2 / float(np.var(y, ddof=1))))
    # Brief 0.5, 0.54, 0.6 against long 0.1, 0.3, 0.2: ranks (1, 2, 3) vs (1, 3, 2).
    assert f.rho == pytest.approx(0.5)
    assert [p.number for p in f.pairs] == [0, 2, 5]


def test_summarize_rejects_what_cannot_support_the_check():
    c = {n: 0.05 * 2**n for n in range(5)}
    brief = {n: 0.5 + 0.01 * n for n in range(5)}
    groups = {0: [0.5, 0.51]}
    long = {0: 0.6, 1: 0.61, 2: 0.62}
    with pytest.raises(ValueError, match="at least 5 completed"):
        summarize({n: brief[n] for n in range(4)}, long, groups, {n: c[n] for n in range(4)})
    with pytest.raises(ValueError, match="two or more seeds"):
        summarize(brief, long, {0: [0.5]}, c)
    with pytest.raises(ValueError, match="at least 3 recipes"):
        summarize(brief, {0: 0.6, 1: 0.6}, groups, c)
    with pytest.raises(ValueError, match="without a brief accuracy"):
        summarize(brief, {**long, 9: 0.6}, groups, c)
    with pytest.raises(ValueError, match="one FLOPs ratio"):
        summarize(brief, long, groups, {n: 0.5 for n in range(5)})
    with pytest.raises(ValueError, match="finite"):
        summarize({**brief, 4: math.nan}, long, groups, c)


def test_spread_takes_quantiles_of_log_c():
    from types import SimpleNamespace

    trials = [SimpleNamespace(number=n, ratio=r) for n, r in enumerate([0.4, 0.05, 0.9, 0.1, 0.2, 0.07, 0.6,
                                                                        0.3, 0.13, 0.5])]
    by_c = sorted(trials, key=lambda t: t.ratio)
    assert spread(trials, 4) == [by_c[0], by_c[3], by_c[6], by_c[9]]
    assert spread(trials, 10) == by_c and spread(trials, 20) == by_c
    assert spread(list(reversed(trials)), 4) == spread(trials, 4)  # deterministic


# The fixtures' numbers (seed 0), worked out apart from the code under test: scipy.stats.spearmanr
# on the ten picked recipes (and on their residuals about np.polyfit lines in log2 c),
# scipy.stats.linregress of brief accuracy on log2 c, np.polyfit of degree 2 for the spread at
# matched c, and the seed sd of each group of three runs (np.std, ddof 1) pooled over 4 x 2 df.
RECIPE_TEXT = [
    "fidelity   TRUSTWORTHY: the brief runs carry signal: the recipe reflects real differences between recipes",
    "rank       Spearman ρ = 1.00 between the brief runs, 10 recipes (good ≥ 0.8; FBNetV3 stops at 0.92); "
    "at matched c (trend in log2 c removed) ρ = 0.92",
    "noise      seed σ = 0.60 points (pooled, 8 df; per recipe 0.45 0.79 0.56 0.56)",
    "signal     slope +3.15 ± 0.28 points per doubling of c (t = 11.2, 24 trials); residual sd at matched c "
    "1.62 points = 2.69σ; 98% of the accuracy variance beyond seed noise",
]
RECIPE_REASONS = [
    "because    the brief runs rank 10 recipes like longer training (Spearman ρ = 1.00)",
    "because    accuracy rises +3.15 ± 0.28 points per doubling of c (t = 11.2)",
    "because    98% of the accuracy variance is beyond seed noise (σ = 0.60 points)",
    "because    at matched c recipes differ by 1.62 points (sd), 2.7σ",
]
NOISE_TEXT = [
    "fidelity   UNTRUSTWORTHY: the brief accuracies do not separate recipes from seed noise reliably: train "
    "longer (--steps) or run more trials before trusting the recipe",
    "rank       Spearman ρ = 0.30 between the brief runs, 10 recipes (good ≥ 0.8; FBNetV3 stops at 0.92); "
    "at matched c (trend in log2 c removed) ρ = 0.19",
    "noise      seed σ = 0.42 points (pooled, 8 df; per recipe 0.43 0.40 0.35 0.48)",
    "signal     slope -0.01 ± 0.07 points per doubling of c (t = -0.1, 24 trials); residual sd at matched c "
    "0.42 points = 1.00σ; 7% of the accuracy variance beyond seed noise",
    # The deciding reason: the first failed check.
    "mainly     the brief runs rank 10 recipes unlike longer training (Spearman ρ = 0.30 < 0.5)",
]


def test_json_round_trip_and_format(tmp_path):
    f = _synthetic("recipe")
    path = save_fidelity(f, tmp_path)
    assert path == tmp_path / FIDELITY_FILE and load_fidelity(tmp_path) == f
    assert load_fidelity(tmp_path / "elsewhere") is None
    text = format_fidelity(f, "runs/x")
    assert text.splitlines() == RECIPE_TEXT + RECIPE_REASONS
    assert format_fidelity(f, completed=30).splitlines()[-1] == (
        "note       measured on 24 completed trials; the study has 30 now (rerun the check to include them)")
    assert format_fidelity(f, completed=24) == text
    assert format_fidelity(None, "runs/x") == "fidelity   not measured: run `tinyscale fidelity runs/x`"
    # What `tinyscale fit` prints: the headline lines, and the deciding reason unless trustworthy.
    assert describe_stored(tmp_path).splitlines() == RECIPE_TEXT
    elsewhere = tmp_path / "elsewhere"
    assert describe_stored(elsewhere) == f"fidelity   not measured: run `tinyscale fidelity {elsewhere}`"
    save_fidelity(_synthetic("noise"), tmp_path)
    assert describe_stored(tmp_path).splitlines() == NOISE_TEXT
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        load_fidelity(tmp_path)
    assert describe_stored(tmp_path).startswith("fidelity   unreadable: ")


# ------------------------------------------------------------------------------ end to end

CFG = StudyConfig(data="generated", base_resolution=16, r_range=(0.5, 1.0), steps=8, batch_size=16,
                  train_size=256, val_size=64, seed=0, extra={"bn_calibration_images": 64})
ARGS = ["--recipes", "4", "--factor", "2", "--replicates", "1", "--noise-trials", "2", "--workers", "1",
        "--threads", "1", "--no-progress"]
RUNS = 4 + 2  # long runs + noise replicates


@pytest.fixture(scope="module")
def study_src(tmp_path_factory):
    """A real (tiny) study: 8 trials trained briefly on generated data."""
    from tinyscale.study.executors import make_executor
    from tinyscale.study.driver import run_study

    directory = tmp_path_factory.mktemp("fidelity") / "study"
    run_study(directory, CFG, trials=8, executor=make_executor("local", 1, threads=1), progress=False).close()
    return directory


@pytest.fixture(scope="module")
def measured(study_src, tmp_path_factory):
    """The command run once, uninterrupted, on a copy of the study."""
    directory = tmp_path_factory.mktemp("measured") / "study"
    shutil.copytree(study_src, directory)
    assert main(["fidelity", str(directory), *ARGS]) == 0
    return directory, load_fidelity(directory)


def _without_time(f: Fidelity) -> dict:
    return {**f.to_dict(), "created": None, "runs": [{**r, "train_seconds": None} for r in f.to_dict()["runs"]]}


def test_the_command_writes_the_check(measured, capsys):
    directory, f = measured
    assert (directory / FIDELITY_FILE).is_file() and (directory / "fidelity" / "fidelity.sqlite").is_file()
    assert f.verdict in ("trustworthy", "weak", "untrustworthy")
    assert f.settings.steps == 8 and f.settings.long_steps == 16 and f.settings.factor == 2
    assert len(f.runs) == RUNS and all(r.state == "completed" for r in f.runs)
    assert sorted(r.steps for r in f.runs) == [8, 8, 16, 16, 16, 16]
    assert len(f.pairs) == 4 and len(f.noise) == 2 and all(len(g.accuracies) == 2 for g in f.noise)
    assert f.signal.n == 8
    # The noise groups start with the study's own brief accuracy.
    from tinyscale.study.store import Study

    with Study.open(directory) as study:
        brief = {t.number: t.accuracy for t in study.trials()}
    assert all(g.accuracies[0] == brief[g.number] for g in f.noise)
    assert all(p.brief == brief[p.number] for p in f.pairs)


def test_seeds_differ_from_the_studys_and_from_compares(measured):
    directory, f = measured
    with sqlite3.connect(directory / "trials.sqlite") as conn:
        study_seeds = {row[0] for row in conn.execute("SELECT seed FROM trials")}
    seeds = [r.seed for r in f.runs]
    assert len(set(seeds)) == len(seeds)
    assert not set(seeds) & study_seeds
    assert min(seeds) >= FIDELITY_SEED_OFFSET  # compare trains with seeds 0..N-1


def test_a_second_run_trains_nothing(measured, monkeypatch, capsys):
    directory, f = measured
    import tinyscale.study.executors

    def no_training(task):
        raise AssertionError("a finished retraining was trained again")

    monkeypatch.setattr(tinyscale.study.executors, "run_task", no_training)
    capsys.readouterr()
    assert main(["fidelity", str(directory), *ARGS]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"fidelity   {f.verdict.upper()}") and "saved      " in out
    assert _without_time(load_fidelity(directory)) == _without_time(f)


class _Killed(KeyboardInterrupt):
    pass


class _DiesAfter:
    """An in-process executor that dies (as Ctrl-C would) after ``n`` finished runs."""

    def __init__(self, n: int) -> None:
        from tinyscale.study.executors import SequentialExecutor

        self.inner, self.left, self.slots, self.trained = SequentialExecutor(threads=1), n, 1, 0

    def submit(self, task):
        self.inner.submit(task)

    def next_outcome(self):
        if self.left == 0:
            raise _Killed
        self.left -= 1
        self.trained += 1
        return self.inner.next_outcome()

    def close(self):
        self.inner.close()


def test_an_interrupted_check_resumes_with_the_same_numbers(measured, study_src, tmp_path):
    _, reference = measured
    directory = tmp_path / "study"
    shutil.copytree(study_src, directory)
    kwargs = dict(recipes=4, factor=2, replicates=1, noise_trials=2, progress=False)
    with pytest.raises(_Killed):
        measure(directory, executor=_DiesAfter(3), **kwargs)
    assert not (directory / FIDELITY_FILE).exists()  # only a complete check is written
    with sqlite3.connect(directory / "fidelity" / "fidelity.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3
    resumed_executor = _DiesAfter(100)
    resumed = measure(directory, executor=resumed_executor, **kwargs)
    assert resumed_executor.trained == RUNS - 3
    # Same seeds, same trainer, same thread count: the numbers of the uninterrupted run.
    assert _without_time(resumed) == _without_time(reference)
    assert _without_time(load_fidelity(directory)) == _without_time(reference)

    # Other settings reuse what matches: more replicates train only the new seeds.
    more = _DiesAfter(100)
    bigger = measure(directory, executor=more, **{**kwargs, "replicates": 2})
    assert more.trained == 2 and all(len(g.accuracies) == 3 for g in bigger.noise)
    assert bigger.pairs == reference.pairs


def test_runs_under_other_trainer_settings_are_refused(measured, tmp_path):
    directory, _ = measured
    copy = tmp_path / "study"
    shutil.copytree(directory, copy)
    with sqlite3.connect(copy / "fidelity" / "fidelity.sqlite") as conn:
        budget = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'budget'").fetchone()[0])
    assert budget["data"] == "generated" and "steps" not in budget and "threads" not in budget
    with pytest.raises(ValueError, match=r"another budget \(lr: 0.0015 -> 1.0\); .*--restart"):
        FidelityStore.open(copy, {**budget, "lr": 1.0})
    with FidelityStore.open(copy, {**budget, "lr": 1.0}, restart=True) as store:
        assert store.runs() == {}


def test_bad_input_is_one_line_and_exit_2(measured, tmp_path, capsys):
    directory, _ = measured
    from _fit_fixtures import synthetic_trials, write_study

    few = write_study(tmp_path / "few", synthetic_trials(n_good=3, n_decoys=0))
    cases = [
        ([str(tmp_path / "nope")], "no study at"),
        ([str(few)], "needs at least 5"),
        ([str(directory), "--recipes", "2"], "recipes must be an integer of at least 3"),
        ([str(directory), "--factor", "0.5"], "factor must be a number of at least 1"),
        ([str(directory), "--replicates", "0"], "replicates must be"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(["fidelity", *argv, "--no-progress"]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("tinyscale fidelity: error: ") and message in err and "\n" not in err, err
    assert not (few / FIDELITY_FILE).exists()


# ------------------------------------------------------------------------------ where it is shown


@pytest.fixture(scope="module")
def fit_study(tmp_path_factory):
    from _fit_fixtures import synthetic_trials, write_study

    return write_study(tmp_path_factory.mktemp("fit") / "study", synthetic_trials(seed=1))


def test_fit_and_recipe_print_the_stored_check_or_how_to_measure_it(fit_study, capsys):
    capsys.readouterr()
    assert main(["fit", str(fit_study)]) == 0
    assert f"fidelity   not measured: run `tinyscale fidelity {fit_study}`" in capsys.readouterr().out
    assert main(["recipe", str(fit_study), "--ratio", "0.2"]) == 0
    assert f"fidelity   not measured: run `tinyscale fidelity {fit_study}`" in capsys.readouterr().out
    assert main(["recipe", str(fit_study), "--ratio", "0.2", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["fidelity_verdict"] is None and answer["stop_rule"] is None  # a uniform study has none
    f = _synthetic("recipe")
    save_fidelity(f, fit_study)
    # The recipe says what it rests on, as fit does: the stored verdict with its numbers.
    assert main(["recipe", str(fit_study), "--ratio", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "fidelity   TRUSTWORTHY" in out and f"Spearman ρ = {f.rho:.2f}" in out
    assert main(["recipe", str(fit_study), "--ratio", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fidelity_verdict"] == f.verdict == "trustworthy"
    assert main(["fit", str(fit_study)]) == 0
    out = capsys.readouterr().out
    assert "fidelity   TRUSTWORTHY" in out and f"Spearman ρ = {f.rho:.2f}" in out
    assert f"seed σ = {100 * f.sigma:.2f} points" in out and f"slope {100 * f.signal.slope:+.2f}" in out
    assert "because" not in out and "mainly" not in out  # fit: the headline lines; `tinyscale fidelity`: why
    assert "measured on 24 completed trials; the study has 54 now" in out
    assert main(["fit", str(fit_study), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fidelity"] == json.loads(json.dumps(f.to_dict()))
    (fit_study / FIDELITY_FILE).unlink()


def test_the_assistant_explains_a_missing_stale_or_damaged_check(tmp_path):
    from tinyscale.assistant.answers import trust

    t = trust(tmp_path)
    assert t.verdict is None and t.note is None and t.command == f"tinyscale fidelity {tmp_path}"
    f = _synthetic("trend")
    save_fidelity(f, tmp_path)
    t = trust(tmp_path, completed=30)
    assert t.verdict == "weak" and t.reasons == f.reasons and "the study has 30 now" in t.note
    assert dict((label, value) for label, value, _ in t.metrics)["spread at matched c"] == \
        f"{f.signal.residual_ratio:.2f} σ"
    assert trust(tmp_path, completed=24).note is None
    assert "surface's rank agreement ρ" not in [label for label, _, _ in t.metrics]  # no fit given
    long = {p.number: p.long for p in f.pairs}
    shown = {label: (value, help_text) for label, value, help_text in trust(tmp_path, predicted=long).metrics}
    value, help_text = shown["surface's rank agreement ρ"]
    assert value == "1.00" and f"on {len(f.pairs)} of the recipes; their single brief runs: {f.rho:.2f}" in help_text
    (tmp_path / FIDELITY_FILE).write_text("[]")
    t = trust(tmp_path)
    assert t.verdict is None and "unreadable" in t.note


APP = str(Path(__file__).resolve().parents[1] / "app" / "main.py")


def test_the_app_shows_how_far_to_trust_the_recipe(monkeypatch, tmp_path_factory, tmp_path):
    from streamlit.testing.v1 import AppTest

    from _app_fixtures import fitted_study

    study = fitted_study(tmp_path_factory.mktemp("app-src"), tmp_path / "study")
    monkeypatch.setenv("TINYSCALE_STUDY", str(study))
    at = AppTest.from_file(APP, default_timeout=120).run()  # the first run imports torch and botorch
    assert not at.exception, [e.value for e in at.exception]
    assert "How far to trust this recipe" in [h.value for h in at.subheader]
    assert any("Not measured yet" in e.value for e in at.info)
    assert f"tinyscale fidelity {study}" in [c.value for c in at.code]

    for kind, shown in (("noise", "error"), ("recipe", "success")):
        f = _synthetic(kind)
        save_fidelity(f, study)
        at = AppTest.from_file(APP, default_timeout=120).run()
        assert not at.exception, [e.value for e in at.exception]
        boxes = [e.value for e in getattr(at, shown)]
        assert any(v.startswith(f"**{f.verdict.capitalize()}**") for v in boxes), boxes
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["rank agreement ρ"] == f"{f.rho:.2f}"
        from tinyscale.evaluate.fidelity import model_agreement
        from tinyscale.fit.solve import RecipeSolver

        surface = model_agreement(f, RecipeSolver.load(study).fit.trial_accuracy())
        assert metrics["surface's rank agreement ρ"] == f"{surface.rho:.2f}"
        assert metrics["seed noise σ"] == f"{100 * f.sigma:.2f} pts"
        assert metrics["slope per doubling of c"] == f"{100 * f.signal.slope:+.2f} pts"
        markdown = "\n".join(m.value for m in at.markdown)
        assert all(reason in markdown for reason in f.reasons)


def test_the_seed_noise_alone_is_the_checks_noise_and_the_check_reuses_its_runs(study_src, tmp_path, monkeypatch):
    from tinyscale.evaluate.fidelity import NOISE_FILE, load_noise, measure_noise, noise_for_fit, pooled_noise

    directory = tmp_path / "study"
    shutil.copytree(study_src, directory)
    assert noise_for_fit(directory) is None  # nothing measured: the surface infers its noise
    noise = measure_noise(directory, replicates=1, noise_trials=2, progress=False)
    assert (directory / NOISE_FILE).is_file() and not (directory / FIDELITY_FILE).exists()
    assert load_noise(directory) == noise and noise_for_fit(directory, "measured") == noise.sigma
    assert noise.sigma_df == 2 and len(noise.noise) == 2 and noise.sigma > 0
    # The pooled sd of the stored groups, recomputed from their accuracies.
    groups = {g.number: g.accuracies for g in noise.noise}
    sigma = math.sqrt(sum(np.var(a, ddof=1) for a in groups.values()) / 2)
    assert noise.sigma == pytest.approx(sigma, rel=1e-12)
    assert pooled_noise(groups, {g.number: g.ratio for g in noise.noise})[0] == pytest.approx(sigma, rel=1e-12)

    # The full check trains only its long runs: the replicates are the ones stored above.
    import tinyscale.study.executors

    trained = []
    real = tinyscale.study.executors.run_task

    def counting(task):
        trained.append(task.train["steps"])
        return real(task)

    monkeypatch.setattr(tinyscale.study.executors, "run_task", counting)
    assert main(["fidelity", str(directory), *ARGS]) == 0
    assert sorted(trained) == [16, 16, 16, 16]
    f = load_fidelity(directory)
    assert f.sigma == pytest.approx(noise.sigma, rel=1e-12) and noise_for_fit(directory) == f.sigma
    (directory / NOISE_FILE).write_text('{"format": 1, "sigma": "x"}')
    (directory / FIDELITY_FILE).unlink()
    with pytest.raises(ValueError, match="unreadable"):
        noise_for_fit(directory)


def test_a_models_rank_agreement_with_the_long_runs():
    from tinyscale.evaluate.fidelity import model_agreement

    f = _synthetic("recipe")
    long = {p.number: p.long for p in f.pairs}
    same = model_agreement(f, long)
    assert same.rho == pytest.approx(1.0) and same.n == len(f.pairs) and same.rho_brief == pytest.approx(f.rho)
    assert model_agreement(f, {n: -a for n, a in long.items()}).rho == pytest.approx(-1.0)
    # Only the recipes the model covers count, for both ρ.
    three = dict(list(long.items())[:3])
    part = model_agreement(f, {n: -a for n, a in three.items()})
    briefs = [p.brief for p in f.pairs if p.number in three]
    assert part.n == 3 and part.rho == pytest.approx(-1.0)
    assert part.rho_brief == pytest.approx(spearman(briefs, list(three.values())))
    assert model_agreement(f, dict(list(long.items())[:2])) is None  # too few to rank
    assert model_agreement(None, long) is None


def test_the_pages_own_fit_infers_the_noise_when_the_noise_file_is_damaged(tmp_path):
    # No saved fit: the page fits the trials itself, with the measured seed noise when there is
    # one; a damaged seed-noise.json must not stop the page: it says so and infers the noise.
    from _fit_fixtures import CONFIG, synthetic_trials, write_study
    from tinyscale.assistant.fit_source import load_fit
    from tinyscale.evaluate.fidelity import NOISE_FILE

    trials = synthetic_trials(n_good=10, n_decoys=6, seed=4)
    study = write_study(tmp_path / "study", trials)
    (study / NOISE_FILE).write_text('{"sigma": "not a number"', encoding="utf-8")
    source = load_fit(study, trials, CONFIG)
    assert not source.saved and source.solver.fit.surface.seed_noise is None
    assert f"{study / NOISE_FILE} is unreadable" in source.note and "Using a fresh fit instead" in source.note
    assert "fitted in the app from 16 completed trials" in source.note
    assert (study / NOISE_FILE).read_text(encoding="utf-8") == '{"sigma": "not a number"'  # left as it was


def test_seed_noise_measured_at_rung_0_is_not_given_to_a_fit_that_reads_a_longer_rung(tmp_path):
    # The check retrains at the study's steps (rung 0); a halving study's fit reads a longer rung,
    # whose noise is smaller. "auto" infers the noise there; "measured" says why it cannot.
    from _synthetic_halving import CFG, SyntheticExecutor

    from dataclasses import replace

    from tinyscale.evaluate.fidelity import noise_for_fit, save_noise
    from tinyscale.evaluate.fidelity.records import SeedNoise
    from tinyscale.evaluate.fidelity.stats import NoiseGroup
    from tinyscale.study.driver import run_study
    from tinyscale.study.store import Study

    noise = SeedNoise(0.03, 2, (NoiseGroup(0, 0.1, (0.5, 0.53, 0.47), 0.03),))
    for schedule in ("halving", "uniform"):
        directory = tmp_path / schedule
        run_study(directory, replace(CFG, schedule=schedule), trials=27, executor=SyntheticExecutor(),
                  progress=False).close()
        save_noise(noise, directory)
    with Study.open(tmp_path / "halving") as study:
        rung = study.fit_rung()
    assert rung > 0
    assert noise_for_fit(tmp_path / "halving") is None
    with pytest.raises(ValueError, match=f"measured at rung 0 .* reads rung {rung}"):
        noise_for_fit(tmp_path / "halving", "measured")
    assert noise_for_fit(tmp_path / "uniform") == noise_for_fit(tmp_path / "uniform", "measured") == 0.03
