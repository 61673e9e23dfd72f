"""The halving schedule (tinyscale.study.halving and the study driver): promotion at matched
cost, the rank-correlation stop rule, resume after a kill, and, on a synthetic study whose true
accuracies and step-dependent noise and bias are known, a better ridge than uniform training
for the same step-units."""

from __future__ import annotations

import math
import random
import sqlite3
from dataclasses import replace

import pytest

from tinyscale.study.driver import run_study
from tinyscale.ranking import spearman
from tinyscale.study.halving import (MIN_PAIRS, RungResult, agreement, check_schedule, fit_rung,
                                     matched_cost_scores, promotions, settled_rung, by_rung)
from tinyscale.study.store import Study

from _synthetic_halving import CFG, S0, SyntheticExecutor, true_shape  # the synthetic truth, shared


def _runs(directory) -> list[tuple]:
    with Study.open(directory) as study:
        return [(t.number, t.rung, t.state, t.accuracy, t.steps) for t in study.runs()]


# ------------------------------------------------------------------ the pure rules
def test_matched_cost_scores_remove_the_trend_in_log_c():
    # Accuracy = a bending function of log c plus a per-recipe bonus that no quadratic in log c
    # explains (projected out): the scores are exactly the bonuses, whatever the costs.
    import numpy as np

    rng = random.Random(0)
    cs = [math.exp(rng.uniform(math.log(0.05), math.log(0.8))) for _ in range(20)]
    x = np.log(cs)
    basis = np.vander(x, 3)
    raw = np.array([rng.uniform(-0.05, 0.05) for _ in cs])
    bonus = raw - basis @ np.linalg.lstsq(basis, raw, rcond=None)[0]
    results = [RungResult(i, 0, c, 0.7 + 0.1 * math.log(c) - 0.02 * math.log(c) ** 2 + b)
               for i, (c, b) in enumerate(zip(cs, bonus))]
    scores = matched_cost_scores(results)
    assert [scores[i] for i in range(20)] == pytest.approx(list(bonus), abs=1e-9)
    # Below QUADRATIC_FROM results the trend is a line: an exact line leaves zero scores.
    line = [RungResult(i, 0, c, 0.5 + 0.1 * math.log(c)) for i, c in enumerate(cs[:5])]
    assert list(matched_cost_scores(line).values()) == pytest.approx([0.0] * 5, abs=1e-12)


def test_promotion_ranks_at_matched_cost_not_by_accuracy():
    # The biggest networks are the most accurate at every rung, by far; the recipe with the best
    # shape at each cost is a small one. Raw accuracy would promote the three biggest.
    cs = [0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.4, 0.4, 0.4]
    shape = [0.00, 0.03, -0.01, 0.02, -0.02, 0.00, -0.01, 0.00, 0.01, 0.00, -0.03, -0.01]
    results = [RungResult(i, 0, c, 0.5 + 0.1 * math.log(c) + s) for i, (c, s) in enumerate(zip(cs, shape))]
    biggest = sorted(results, key=lambda r: -r.accuracy)[:4]
    assert {r.ratio for r in biggest} == {0.4, 0.2}  # raw accuracy says: the big ones
    promoted = promotions(results, {}, eta=3, top=2)
    assert [p.rung for p in promoted] == [1] * 4
    # Each promoted recipe is the best shape at its cost, and three costs are represented.
    assert {p.number for p in promoted} == {1, 3, 8, 9}
    # Already promoted recipes are not promoted again; the next in line is not added either
    # (4 of 12 is the quota).
    assert promotions(results, {1: {1, 3}}, eta=3, top=2) == [p for p in promoted if p.number not in {1, 3}]


def test_promotions_go_to_the_highest_rung_first_and_never_past_the_top():
    rng = random.Random(2)
    rung0 = [RungResult(i, 0, 0.1 * (1 + i % 3), 0.5 + rng.uniform(0, 0.1)) for i in range(24)]
    promoted = [p.number for p in promotions(rung0, {}, eta=3, top=2)]
    assert len(promoted) == 8
    # Rung 1 disagrees with rung 0 (reversed gains), so rung 2 is not settled away.
    rung1 = [RungResult(n, 1, 0.1 * (1 + n % 3), 0.6 - r.accuracy / 2) for n, r in
             ((n, rung0[n]) for n in promoted[:6])]
    due = promotions(rung0 + rung1, {1: set(promoted[:6])}, eta=3, top=2)
    assert due[0].rung == 2 and len([p for p in due if p.rung == 2]) == 2
    assert [p.rung for p in due[2:]] == [1, 1]
    # With 5 recipes at rung 1 the stop rule cannot judge yet: nothing goes to rung 2.
    assert all(p.rung == 1 for p in promotions(rung0 + rung1[:5], {1: set(promoted[:5])}, eta=3, top=2))
    rung2 = [RungResult(n, 2, 0.3, 0.7) for n in (due[0].number, due[1].number)]
    assert all(p.rung <= 2 for p in promotions(rung0 + rung1 + rung2, {1: set(promoted[:6]),
                                                2: {p.number for p in due[:2]}}, eta=3, top=2))


def test_spearman_against_hand_computed_values():
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)  # scipy's, ties averaged
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # 1 - 6 * sum(d^2) / (n (n^2 - 1)) with one swap of neighbours among 6: 1 - 12/210
    assert spearman([1, 2, 3, 4, 5, 6], [1, 2, 4, 3, 5, 6]) == pytest.approx(1 - 12 / 210)
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # undefined: one side constant


def test_the_stop_rule_needs_agreement_over_enough_recipes():
    rng = random.Random(1)
    cs = [math.exp(rng.uniform(math.log(0.05), math.log(0.8))) for _ in range(18)]
    shape = [rng.uniform(-0.05, 0.05) for _ in cs]
    rung0 = [RungResult(i, 0, c, 0.5 + 0.1 * math.log(c) + s) for i, (c, s) in enumerate(zip(cs, shape))]
    top = sorted(range(18), key=lambda i: -matched_cost_scores(rung0)[i])
    # Rung 1 ranks the promoted recipes exactly as rung 0 did (a constant gain in accuracy).
    agreeing = [RungResult(i, 1, cs[i], 0.6 + 0.1 * math.log(cs[i]) + shape[i]) for i in top[:MIN_PAIRS]]
    assert agreement(rung0, agreeing).settled and settled_rung(by_rung(rung0 + agreeing), 2) == 0
    assert not agreement(rung0, agreeing[:MIN_PAIRS - 1]).settled  # too few pairs to say
    # Rung 1 ranks them in reverse: not settled, and raw accuracies (cost-driven) would
    # still agree, which is why the rule reads matched-cost scores.
    reverse = [RungResult(i, 1, cs[i], 0.6 + 0.1 * math.log(cs[i]) - 3 * shape[i]) for i in top[:MIN_PAIRS]]
    verdict = agreement(rung0, reverse)
    assert not verdict.settled and verdict.rho < 0
    assert fit_rung(rung0 + reverse, 2) == 1  # the highest rung with enough recipes to fit on
    assert fit_rung(rung0 + reverse[:4], 2) == 0  # 4 are too few for the accuracy surface
    assert fit_rung(rung0 + agreeing, 2) == 0  # settled at rung 0: its 18 recipes rank as well


def test_schedule_options_are_checked():
    check_schedule("halving", 3, 2, 100, 10_000)
    for args, words in ((("fast", 3, 2), "--schedule must be one of"), (("halving", 1, 2), "--eta must be"),
                        (("halving", 3, 0), "--rungs must be"), (("halving", 3.0, 2), "--eta must be")):
        with pytest.raises(ValueError, match=words):
            check_schedule(*args, 100, 10_000)
    with pytest.raises(ValueError, match="top rung would train 900 steps"):
        check_schedule("halving", 3, 2, 100, 800)


# ------------------------------------------------------------------ the schedule in a study
def test_a_halving_study_promotes_a_third_per_rung_with_paired_seeds(tmp_path):
    with run_study(tmp_path / "s", CFG, trials=18, executor=SyntheticExecutor(), progress=False) as study:
        runs = study.runs()
        rungs = study.rung_summary()
        counts = [len([t for t in runs if t.rung == k and t.state == "completed"]) for k in range(3)]
        # ASHA: a recipe is promoted as soon as it is in its rung's best third at that moment,
        # and a promotion is never taken back, so a rung can hold more than a third.
        assert counts[0] == 18 and counts[1] >= 6 and counts[2] >= counts[1] // 3
        started = {k: {t.number for t in runs if t.rung == k} for k in (1, 2)}
        assert promotions(study.rung_results(), started, eta=3, top=2) == []  # nothing left due at the end
        assert [r.steps for r in rungs] == [S0, 3 * S0, 9 * S0]
        assert {t.steps for t in runs if t.rung == 2} == {9 * S0}
        # A promoted run trains its recipe with the recipe's seed (paired with its rung-0 run).
        seeds = dict(sqlite3.connect(tmp_path / "s" / "trials.sqlite").execute("SELECT number, seed FROM trials"))
        for number, rung, seed in sqlite3.connect(tmp_path / "s" / "trials.sqlite").execute(
                "SELECT number, rung, seed FROM rung_runs"):
            assert seed == seeds[number]
        # Every recipe at rung k+1 completed at rung k first.
        for t in runs:
            if t.rung:
                assert any(u.number == t.number and u.rung == t.rung - 1 and u.state == "completed" for u in runs)
        assert all(t.device == "cpu" and t.precision == "fp32" for t in runs)
        assert study.fit_rung() == max(k for k in range(3) if counts[k] >= 5)  # no settling with this bias


def test_the_bar_gives_each_rungs_best_accuracy(tmp_path, capsys):
    """A study in rungs shows, beside each rung's count, each rung's best accuracy: rung 0's
    alone stood still at the brief runs' level while the runs the fit reads climbed."""
    with run_study(tmp_path / "s", CFG, trials=12, executor=SyntheticExecutor(), progress=True) as study:
        runs = [t for t in study.runs("completed")]
    err = capsys.readouterr().err
    best = {k: max(t.accuracy for t in runs if t.rung == k) for k in {t.rung for t in runs}}
    counts = {k: sum(t.rung == k for t in runs) for k in best}
    assert set(best) == {0, 1, 2}
    assert (f"rungs {counts[0]}/{counts[1]}/{counts[2]}, best acc "
            f"{best[0]:.3f}/{best[1]:.3f}/{best[2]:.3f} by rung, failed 0") in err


def test_a_uniform_study_is_unchanged_by_the_schedule(tmp_path):
    uniform = replace(CFG, schedule="uniform")
    with run_study(tmp_path / "u", uniform, trials=6, executor=SyntheticExecutor(), progress=False) as study:
        assert [t.rung for t in study.runs()] == [0] * 6 and study.rung_runs() == []
        assert study.fit_trials() == study.trials("completed")


@pytest.mark.parametrize("leave_running", [False, True], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_halving_study_resumes_to_the_same_rungs(tmp_path, monkeypatch, leave_running):
    whole = tmp_path / "whole"
    run_study(whole, CFG, trials=12, executor=SyntheticExecutor(), progress=False).close()
    cut = tmp_path / "cut"
    if leave_running:  # kill -9 releases nothing: the run in flight stays 'running' on disk
        monkeypatch.setattr(Study, "release_trials", lambda self, numbers, rung=0: None)
    # Submission 13 is the first rung-1 run after rung 0's 12 (the 4th promotion is due then).
    with pytest.raises(KeyboardInterrupt):
        run_study(cut, CFG, trials=12, executor=SyntheticExecutor(crash_at=14), progress=False)
    monkeypatch.undo()
    states = {(n, k): s for n, k, s, *_ in _runs(cut)}
    assert any(k >= 1 for n, k in states) and ("running" in states.values()) == leave_running
    run_study(cut, None, resume=True, executor=SyntheticExecutor(), progress=False).close()
    assert sorted(_runs(cut)) == sorted(_runs(whole))


def test_a_settled_ranking_stops_lengthening_and_buys_recipes(tmp_path):
    # No bias and little noise: rung 0 ranks as rung 1 does, so rung 2 is never trained and the
    # fit reads rung 0.
    calm = SyntheticExecutor(bias=0.0, noise=0.001)
    with run_study(tmp_path / "calm", CFG, trials=27, executor=calm, progress=False) as study:
        summary = study.rung_summary()
        assert summary[0].agreement.settled and summary[0].agreement.pairs >= MIN_PAIRS
        assert [t for t in study.runs() if t.rung == 2] == []
        assert study.fit_rung() == 0 and len(study.fit_trials()) == 27
    # With the depth bias, rung 0 does not rank as rung 1 does: the study lengthens.
    with run_study(tmp_path / "biased", CFG, trials=27, executor=SyntheticExecutor(), progress=False) as study:
        assert not study.rung_summary()[0].agreement.settled
        assert len([t for t in study.runs() if t.rung == 2]) >= 2


def _picked_shape(study: Study, k: int = 3) -> float:
    """The true shape (0 is best) of the ``k`` recipes the study rates best at matched cost on
    the rung its fit reads: what its advice would be built from."""
    trials = study.fit_trials()
    scores = matched_cost_scores([RungResult(t.number, t.rung, t.ratio, t.accuracy) for t in trials])
    best = sorted(trials, key=lambda t: -scores[t.number])[:k]
    return sum(true_shape(t.recipe) for t in best) / k


def _step_units(study: Study) -> int:
    return sum(t.steps for t in study.runs("completed"))


def test_halving_finds_the_true_ridge_with_fewer_step_units_than_uniform(tmp_path):
    # Paired over study seeds: halving from 27 recipes (about 27 + 9 x 3 + 3 x 9 = 81 rung-0
    # step-units; ASHA's early promotions add some) against uniform studies of the same cost at
    # the short length and at the long one, and a long uniform study of twice that cost.
    gaps = {"halving": [], "short": [], "long": [], "long x2": []}
    for seed in range(4):
        with run_study(tmp_path / f"halving-{seed}", replace(CFG, seed=seed), trials=27,
                       executor=SyntheticExecutor(), progress=False) as study:
            gaps["halving"].append(_picked_shape(study))
            units = _step_units(study) // S0
        uniform = replace(CFG, seed=seed, schedule="uniform")
        for name, config, n in (("short", uniform, units), ("long", replace(uniform, steps=9 * S0), units // 9),
                                ("long x2", replace(uniform, steps=9 * S0), 2 * units // 9)):
            with run_study(tmp_path / f"{name}-{seed}", config, trials=n, executor=SyntheticExecutor(),
                           progress=False) as study:
                gaps[name].append(_picked_shape(study))
                assert _step_units(study) // S0 <= (2 if name == "long x2" else 1) * units
    mean = {k: sum(v) / len(v) for k, v in gaps.items()}
    print(gaps)
    assert mean["halving"] > mean["short"] + 0.02  # short training's ridge is the biased one
    assert mean["halving"] > mean["long"]  # the same step-units seeing 3x the recipes
    assert mean["halving"] >= mean["long x2"] - 0.005  # as good as twice the step-units of long training


# ------------------------------------------------------------------ the command line and the app
def test_trials_fit_and_the_app_show_the_rungs(tmp_path, capsys, monkeypatch):
    import json

    from tinyscale.cli import main

    directory = tmp_path / "s"
    run_study(directory, CFG, trials=27, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        summary, fit_rung, fit_trials = study.rung_summary(), study.fit_rung(), study.fit_trials()
        runs = study.runs("completed")
    assert len(fit_trials) == summary[fit_rung].completed >= 5 and {t.rung for t in fit_trials} == {fit_rung}
    capsys.readouterr()
    assert main(["trials", str(directory), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted((t["number"], t["rung"], t["accuracy"]) for t in listed["trials"]) == sorted(
        (t.number, t.rung, t.accuracy) for t in runs)
    assert listed["fit_rung"] == fit_rung and [r["completed"] for r in listed["rungs"]] == [r.completed for r in summary]
    assert [r["best_accuracy"] for r in listed["rungs"]] == [  # each rung's best, from the runs themselves
        max((t.accuracy for t in runs if t.rung == r.rung), default=None) for r in summary]
    assert main(["trials", str(directory)]) == 0
    text = capsys.readouterr().out
    assert f"rung {fit_rung}: {summary[fit_rung].steps:,} steps" in text
    # `fit` reads every rung by default: no rung is called the one it reads, and the ridge's rung is
    # the highest with runs (what `fit --json` says below), not the fit rung.
    top = max(r.rung for r in summary if r.completed)
    assert "<- the fit reads this rung" not in text
    assert f"finished at rung 0: {summary[0].completed} completed" in text
    assert (f"the fit reads every rung's runs, its ridge at rung {top} ({summary[top].steps:,} steps, the longest "
            f"runs); `fit --from-rungs fit` reads rung {fit_rung} alone") in text
    assert main(["fit", str(directory), "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    # By default the fit read every completed run of every rung (tinyscale.fit.multifidelity), each
    # with its own rung's accuracy; the app below reads that fit.
    assert sorted(fitted["selected"]) == sorted(t.number for t in runs)
    run_accuracy = {(t.number, t.rung): t.accuracy for t in runs}
    assert all(row["accuracy"] == pytest.approx(run_accuracy[row["number"], row["rung"]]) for row in fitted["trials"])
    assert fitted["fit_rung"] == fit_rung and fitted["rungs_read"] == sorted({t.rung for t in runs})
    assert fitted["ridge_rung"] == top

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TINYSCALE_STUDY", str(directory))
    at = AppTest.from_file(str(__import__("pathlib").Path(__file__).resolve().parents[1] / "app" / "main.py"),
                           default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Rungs: which recipes were trained longer" in [h.value for h in at.subheader]
    assert "Promotion: async, as runs finished" in " ".join(c.value for c in at.caption)
    # The recipe panel draws (base 16 cannot build TinyNet-E, 7 px: it is left out, not fatal).
    assert not [w.value for w in at.warning if "No recipe curves" in w.value]
    captions = " ".join(c.value for c in at.caption)
    # The ridge is read at the longest runs' rung, as `fit` says (not at the fit rung).
    assert fitted["ridge_rung"] == max(fitted["rungs_read"])
    assert (f"fitted on every rung's runs (rungs {', '.join(map(str, fitted['rungs_read']))}) and read at rung "
            f"{fitted['ridge_rung']}, the longest runs") in captions
    assert f"read at rung {fitted['ridge_rung']})" in captions and "one for every rung) was inferred" in captions
    shown = {m.label: m.value for m in at.metric}
    for r in summary:
        assert shown[f"rung {r.rung}: {r.steps:,} steps"] == f"{r.completed} recipes"
        a = r.agreement  # each rung's rho with the next, and whether that is no better than chance
        if a is not None and a.rho is not None:
            assert f"rho {a.rho:+.2f} with rung {r.rung + 1} ({a.pairs} recipes)" + (
                f": no better than chance (p = {a.p_value:.2f})" if a.chance else "") in captions
    # The sidebar counts recipes (rung 0) and runs (every rung) apart.
    side = {m.label: m.value for m in at.sidebar.metric}
    assert side["recipes"] == str(summary[0].completed) and side["runs"] == str(len(runs))
    best = [max(t.accuracy for t in runs if t.rung == k) for k in range(len(summary))]
    assert side[f"best accuracy at rung {len(summary) - 1}"] == f"{best[-1]:.2%}"  # the longest runs', not rung 0's
    assert "best by rung: " + " / ".join(f"{b:.1%}" for b in best) in [c.value for c in at.sidebar.caption]
    # The trust panel says what the stop rule found before any fidelity check ran.
    first = summary[0].agreement
    assert any(f"The study's stop rule: rung 0 ({summary[0].steps:,} steps) against rung 1: ρ {first.rho:+.2f} over "
               f"{first.pairs} recipes" in i.value for i in at.info), [i.value for i in at.info]


def test_the_trust_panel_says_whether_the_stop_rule_settled():
    from tinyscale.assistant.answers import stop_rule_words
    from tinyscale.study.halving import RungAgreement, RungSummary

    def rungs(rho: float, pairs: int):
        return [RungSummary(0, 10, 30, RungAgreement(0, pairs, rho, rho)), RungSummary(1, 30, pairs, None)]

    assert stop_rule_words(None) is None and stop_rule_words(rungs(None, 2)) is None  # nothing compared yet
    words = stop_rule_words(rungs(0.95, MIN_PAIRS))
    assert "rung 0 (10 steps) against rung 1: ρ +0.95 over" in words and "Rung 0 ranks like the next" in words
    # A high rho over too few recipes, or enough recipes below the threshold, is not settled.
    for rho, pairs in ((0.95, MIN_PAIRS - 1), (0.5, MIN_PAIRS)):
        assert "Not settled" in stop_rule_words(rungs(rho, pairs))


def test_spearman_p_against_the_exact_permutation_distribution_and_a_t_table():
    import itertools

    from tinyscale.ranking import spearman_p

    n = 7  # every ordering of 7 untied ranks: the exact null distribution of rho
    d2 = [sum((i - j) ** 2 for i, j in enumerate(p)) for p in itertools.permutations(range(n))]
    rhos = [1 - 6 * x / (n * (n * n - 1)) for x in d2]
    for rho in (0.5, 0.6, 0.7, 0.8, 0.9):
        exact = sum(r >= rho - 1e-12 for r in rhos) / len(rhos)
        assert abs(spearman_p(rho, n) - exact) < 0.01, rho
    # t(0.05, 10 df) = 1.812 (a printed table): rho = t / sqrt(df + t^2) over 12 pairs is p = 0.05.
    assert spearman_p(1.812 / math.sqrt(10 + 1.812 ** 2), 12) == pytest.approx(0.05, abs=5e-4)
    assert spearman_p(1.0, 6) == 0.0 and spearman_p(-1.0, 6) == 1.0 and spearman_p(0.0, 30) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        spearman_p(0.5, 2)


def test_a_rung_that_ranks_no_better_than_chance_says_so():
    from tinyscale.assistant.answers import stop_rule_words
    from tinyscale.study.halving import RungAgreement, RungSummary, format_rungs

    noise = RungAgreement(0, 29, 0.097, 0.58)  # Imagenette H's rung 0 against rung 1 (100 vs 300 steps)
    assert noise.chance and noise.p_value == pytest.approx(0.31, abs=0.01)
    assert not RungAgreement(0, 12, 0.6, 0.6).chance  # p = 0.02
    assert RungAgreement(0, MIN_PAIRS - 1, 0.0, 0.0).p_value is None  # too few recipes to say
    rungs = [RungSummary(0, 100, 69, noise), RungSummary(1, 300, 29, None)]
    assert "ranks like rung 1 at rho +0.10 over 29 recipes (no better than chance, p = 0.31)" in format_rungs(rungs, 1)
    assert rungs[0].to_dict()["chance"] is True and rungs[0].to_dict()["p_next"] == noise.p_value  # trials --json
    words = stop_rule_words(rungs)
    assert "Rung 0 (100 steps) ranks no better than chance against rung 1 (p = 0.31)" in words
    assert "Not settled" in words
    agreeing = [RungSummary(0, 100, 69, RungAgreement(0, 29, 0.5, 0.8)), RungSummary(1, 300, 29, None)]
    assert "chance" not in format_rungs(agreeing, 1) and "chance" not in stop_rule_words(agreeing)


def test_fidelity_says_what_it_measured_on_a_study_in_rungs(tmp_path):
    from tinyscale.commands.fidelity import halving_note

    with run_study(tmp_path / "h", CFG, trials=27, executor=SyntheticExecutor(), progress=False) as study:
        top = max(t.rung for t in study.runs("completed"))
        assert top == 2
        note = halving_note(study, top)
        assert f"measured rung 2 ({S0 * 9:,} steps," in note and "its longest runs, where a fit across" in note
        note = halving_note(study, 0)
        assert f"its rung-0 trials ({S0:,} steps)" in note and f"longest runs are rung 2's ({S0 * 9:,} steps" in note
    with run_study(tmp_path / "u", replace(CFG, schedule="uniform"), trials=6, executor=SyntheticExecutor(),
                   progress=False) as study:
        assert halving_note(study, 0) is None


def test_a_step_budget_shows_what_it_has_spent(tmp_path, capsys):
    from tinyscale.cli import main

    directory = tmp_path / "h"
    # Half of a 900-step-unit budget (the box check's halfway stop): the budget is open.
    run_study(directory, CFG, budget_steps=900, until=0.5, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        half, runs = study.progress(), study.runs()
    trained = sum(CFG.steps * CFG.eta ** t.rung - t.start_step for t in runs if t.state in ("completed", "failed"))
    assert half.budget_steps == 900 and half.steps_spent == trained and 0 < trained <= 450
    assert half.budget_open and half.cheapest_run == CFG.steps
    assert main(["trials", str(directory)]) == 0
    assert f"steps: {trained:,} of the budget's 900 trained" in capsys.readouterr().out
    # The whole budget: spent once less than a rung-0 run is left, whatever the remainder.
    run_study(directory, budget_steps=900, resume=True, executor=SyntheticExecutor(), progress=False).close()
    with Study.open(directory) as study:
        done = study.progress()
    assert 900 - CFG.steps < done.steps_spent <= 900 and not done.budget_open
