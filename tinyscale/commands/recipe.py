"""`tinyscale recipe`: the (r, w, d) recipe for a FLOPs ratio or MACs budget, from a saved fit."""

from __future__ import annotations

import argparse

from tinyscale.commands.options import TABLE_HELP, add_latency_table_option, latency_table_path


def add_target_args(p: argparse.ArgumentParser, *, latency: bool = False) -> None:
    """--ratio C | --macs M (shared with `tinyscale export`), and --latency-ms X if asked."""
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--ratio", type=float, help="target FLOPs ratio c (MACs relative to the unscaled B0)")
    target.add_argument("--macs", type=float, help="target MACs (multiply-accumulates), e.g. 2e6")
    if latency:
        target.add_argument("--latency-ms", type=float, default=None,
                            help="target latency in milliseconds on the --latency-table table")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recipe",
        help="the recipe for a FLOPs ratio or MACs budget (from `tinyscale fit`)",
        description="r and d from the study's GP fits at the target, w solved against the real MAC count; "
        "prints the network (as `tinyscale inspect`) with the 95%% bands of r and d and whether the "
        "target lies outside the data the GPs saw.",
    )
    p.add_argument("study_dir", metavar="DIR", help="a study directory with a fit (tinyscale fit)")
    add_target_args(p, latency=True)
    add_latency_table_option(p, TABLE_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def target_ratio(solver, args: argparse.Namespace) -> float:
    return solver.ratio_for_macs(args.macs) if args.macs is not None else args.ratio


def answer_fields(answer) -> dict:
    """The `inspect` fields of the recipe plus what the query adds."""
    from tinyscale.space.summary import summarize

    out = summarize(answer.recipe).to_dict()
    out.update({
        "target": answer.target,
        "achieved": answer.achieved,
        "ratio_below": answer.ratio_below,
        "ratio_above": answer.ratio_above,
        "r_mean": answer.r_mean,
        "d_mean": answer.d_mean,
        "r_band": list(answer.r_band),
        "d_band": list(answer.d_band),
        "extrapolated": answer.extrapolated,
        "c_range": list(answer.c_range),
        "clipped": list(answer.clipped),
        "width_clamped": answer.width_clamped,
        "notes": list(answer.note_texts),
        "note_kinds": [n.kind.value for n in answer.notes],
    })
    return out


def how_far_to_trust(study_dir: str) -> tuple[str, dict]:
    """What the recipe rests on, as text and as JSON fields: the stored fidelity check
    (`tinyscale fidelity`: its verdict, or the command that measures it) and, for a study in
    rungs, what its stop rule found of its ranking as runs lengthened. Never raises: a missing
    or unreadable store says so in the text and gives None."""
    from pathlib import Path

    from tinyscale.assistant.answers import stop_rule_words
    from tinyscale.evaluate.fidelity import describe_stored, load_fidelity
    from tinyscale.study.store import TRIALS_FILE, Study

    try:
        stored = load_fidelity(study_dir)
    except ValueError:  # describe_stored says why
        stored = None
    stop_rule = None
    if (Path(study_dir) / TRIALS_FILE).exists():
        try:
            with Study.open(study_dir) as study:
                if study.config.schedule == "halving":
                    stop_rule = stop_rule_words(study.rung_summary())
        except ValueError as exc:
            stop_rule = f"the study cannot be read ({exc})"
    text = describe_stored(study_dir) + ("" if stop_rule is None else f"\nstop rule  {stop_rule}")
    return text, {"fidelity_verdict": None if stored is None else stored.verdict, "stop_rule": stop_rule}


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from tinyscale.assistant.fit_source import stale_fit_note
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.space.summary import format_summary, summarize

    if args.latency_ms is not None:
        return run_latency(args)
    if latency_table_path(args) is not None:
        raise ValueError("--latency-table goes with --latency-ms")
    solver = RecipeSolver.load(args.study_dir)
    answer = solver.solve(target_ratio(solver, args))
    stale = stale_fit_note(args.study_dir, solver.fit)
    if stale:
        print(f"note: {stale}", file=sys.stderr)
    trust_text, trust_fields = how_far_to_trust(args.study_dir)
    if args.json:
        print(json.dumps({**answer_fields(answer), **trust_fields}))
        return 0
    lo, hi = answer.c_range
    extra = {
        "target": f"c={answer.target:.4g}, achieved {answer.achieved:.4g} "
                  f"(rounding step {answer.ratio_below:.4g} .. {answer.ratio_above:.4g})",
        "r band": f"{answer.r_mean:.3f} [{answer.r_band[0]:.3f}, {answer.r_band[1]:.3f}] (95%)",
        "d band": f"{answer.d_mean:.3f} [{answer.d_band[0]:.3f}, {answer.d_band[1]:.3f}] (95%)",
        "extrapolated": f"{'yes' if answer.extrapolated else 'no'} (fitted c from {lo:.4g} to {hi:.4g})",
    }
    for i, note in enumerate(answer.notes):
        extra[f"note {i + 1}"] = note.text
    print(format_summary(summarize(answer.recipe), extra))
    print(trust_text)
    return 0


def run_latency(args: argparse.Namespace) -> int:
    """--latency-ms X --latency-table FILE: the recipe predicted to meet X on that device, verified by
    one real measurement when the table was measured on this machine."""
    import json
    import sys

    from tinyscale.commands.latency import measure_if_here, measured_line
    from tinyscale.assistant.fit_source import stale_fit_note
    from tinyscale.latency import LatencyTable, check_latency_ms
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.space.summary import format_summary, summarize

    target_ms = check_latency_ms(args.latency_ms)
    table_path = latency_table_path(args)
    if table_path is None:
        raise ValueError("--latency-ms needs --latency-table FILE, a latency table of the device "
                         "(`tinyscale latency-table --out FILE` measures this machine's)")
    table = LatencyTable.load(table_path)
    solver = RecipeSolver.load(args.study_dir)
    ans = solver.solve_latency(target_ms * 1000.0, table.predict_us)
    stale = stale_fit_note(args.study_dir, solver.fit)
    if stale:
        print(f"note: {stale}", file=sys.stderr)
    measured = measure_if_here(table, ans.recipe, args)
    fields = answer_fields(ans.at_ratio)
    fields.update(summarize(ans.recipe).to_dict())
    fields.update({
        "latency_target_ms": target_ms,
        "latency_predicted_ms": ans.predicted_us / 1000.0,
        "latency_below_ms": None if ans.below_us is None else ans.below_us / 1000.0,
        "latency_above_ms": None if ans.above_us is None else ans.above_us / 1000.0,
        "latency_measured_ms": None if measured is None else measured.median_ms,
        "width_solved": ans.width_solved,
        "device": table.profile.to_dict(),
    })
    trust_text, trust_fields = how_far_to_trust(args.study_dir)
    fields.update(trust_fields)
    if args.json:
        print(json.dumps(fields))
        return 0
    extra = {"device": table.profile.describe(),
             "latency": f"target {target_ms:g} ms, predicted {ans.predicted_us / 1000:.3f} ms"
                        + (f" (rounding step {ans.below_us / 1000:.3f} .. {ans.above_us / 1000:.3f} ms)"
                           if ans.below_us is not None else "")}
    extra["measured"] = measured_line(measured)
    if not ans.width_solved:
        extra["note"] = ("no width meets the latency at the fit's r and d; this is the fit's answer at "
                         f"c={ans.at_ratio.target:.4g}")
    extra["r band"] = f"{ans.at_ratio.r_mean:.3f} [{ans.at_ratio.r_band[0]:.3f}, {ans.at_ratio.r_band[1]:.3f}] (95%)"
    extra["d band"] = f"{ans.at_ratio.d_mean:.3f} [{ans.at_ratio.d_band[0]:.3f}, {ans.at_ratio.d_band[1]:.3f}] (95%)"
    for i, note in enumerate(ans.at_ratio.notes):
        extra[f"note {i + 1}"] = note.text
    print(format_summary(summarize(ans.recipe), extra))
    print(trust_text)
    return 0
