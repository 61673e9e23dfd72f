"""`tinyscale scale`: the recipe a baseline scaling rule gives at a FLOPs ratio."""

from __future__ import annotations

import argparse
import json

from baselines.common import DEFAULT_RULES
from baselines.registry import RULES
from tinyscale.commands.inspect import add_base_args
from tinyscale.commands.options import TABLE_HELP, add_latency_table_option, latency_table_path


def rule_help() -> str:
    """The registry's one-line helps, rules with the same help named together."""
    groups: list[tuple[list[str], str]] = []
    for rule in RULES:
        if groups and groups[-1][1] == rule.help:
            groups[-1][0].append(rule.name)
        else:
            groups.append(([rule.name], rule.help))
    return ("; ".join(f"{'/'.join(names)}: {text}" for names, text in groups)
            + f". Solved rules meet the counted MACs, under {DEFAULT_RULES} rules unless said otherwise")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scale", help="the recipe a baseline scaling rule gives at a FLOPs ratio")
    p.add_argument("--rule", choices=[rule.name for rule in RULES], help=rule_help())
    p.add_argument("--ratio", type=float, default=None,
                   help="target FLOPs ratio c vs the unscaled B0 (required except for tinynet-a..e, which ignore it)")
    p.add_argument("--latency-ms", type=float, default=None,
                   help="instead of --ratio: a latency target in ms on the --latency-table table (any solved rule: its "
                        "knob, e.g. EfficientNet's φ, solved for the predicted latency)")
    add_latency_table_option(p, TABLE_HELP)
    p.add_argument("--table", action="store_true",
                   help="instead of one rule: the scaling table, every solved rule at each of --ratios")
    p.add_argument("--ratios", type=float, nargs="+", default=None,
                   help="with --table: target ratios (default: the counted ratios of TinyNet-A..E)")
    add_base_args(p)
    p.set_defaults(func=run)


def run_table(args: argparse.Namespace) -> int:
    from tinyscale.space.width import check_ratio
    from baselines.table import format_scaling_table, scaling_table

    for c in args.ratios or ():
        check_ratio(c)
    rows = scaling_table(args.ratios, base_resolution=args.base_resolution, num_classes=args.num_classes)
    if args.json:
        print(json.dumps({"rows": [row.to_dict() for row in rows]}))
    else:
        print(format_scaling_table(rows))
    return 0


def run(args: argparse.Namespace) -> int:
    from baselines import scale

    if args.table:
        return run_table(args)
    if args.rule is None:
        raise ValueError("give --rule RULE (with --ratio C), or --table")
    if args.latency_ms is not None or latency_table_path(args) is not None:
        return run_latency(args)
    from tinyscale.space.summary import format_summary, summarize

    scaled = scale(args.rule, args.ratio, base_resolution=args.base_resolution, num_classes=args.num_classes)
    s = summarize(scaled.recipe)
    if args.json:
        out = s.to_dict()
        out.update(strategy=scaled.strategy, target=scaled.target, achieved=scaled.achieved,
                   ratio_below=scaled.ratio_below, ratio_above=scaled.ratio_above, phi=scaled.phi, s=scaled.s)
        print(json.dumps(out))
        return 0
    extra = {"strategy": scaled.strategy}
    if scaled.target is None:
        extra["target"] = "none (published recipe; --ratio ignored)"
    else:
        extra["target"] = f"{scaled.target:g}"
        extra["achieved"] = (f"{scaled.achieved:.4f} ({100 * scaled.relative_error:+.2f}%; adjacent steps "
                             f"{scaled.ratio_below:.4f} / {scaled.ratio_above:.4f})")
    if scaled.phi is not None:
        extra["phi"] = f"{scaled.phi:g}"
    if scaled.s is not None:
        extra["s"] = f"{scaled.s:.4g} (nominal FLOPs factor, d·w²·r² = s)"
    print(format_summary(s, extra))
    return 0


def run_latency(args: argparse.Namespace) -> int:
    """--rule RULE --latency-ms X --latency-table FILE: the rule's knob solved for the predicted latency
    (measured once too when the table is this machine's, as `recipe --latency-ms` does)."""
    from baselines import SOLVED, knob_fields, scale_latency
    from tinyscale.commands.latency import measure_if_here, measured_line
    from tinyscale.latency import LatencyTable, check_latency_ms
    from tinyscale.space.summary import format_summary, summarize

    table_path = latency_table_path(args)
    if args.latency_ms is None or table_path is None:
        raise ValueError("a latency target needs both --latency-ms X and --latency-table FILE")
    if args.ratio is not None:
        raise ValueError("give --ratio or --latency-ms, not both")
    if args.rule not in SOLVED:
        raise ValueError(f"--latency-ms solves a rule's knob ({', '.join(SOLVED)}); {args.rule!r} is a "
                         "published recipe with a latency of its own (`tinyscale latency --latency-table`)")
    target_ms = check_latency_ms(args.latency_ms)
    table = LatencyTable.load(table_path)
    sol, knob_name = scale_latency(args.rule, target_ms * 1000.0, table.predict_us,
                                   base_resolution=args.base_resolution, num_classes=args.num_classes)
    fields = knob_fields(knob_name, sol.knob)
    phi, s_factor = fields.get("phi"), fields.get("s")
    measured = measure_if_here(table, sol.recipe, args)
    s = summarize(sol.recipe)
    if args.json:
        out = s.to_dict()
        out.update(strategy=args.rule, phi=phi, s=s_factor, latency_target_ms=target_ms,
                   latency_predicted_ms=sol.achieved / 1000, latency_below_ms=sol.below / 1000,
                   latency_above_ms=sol.above / 1000,
                   latency_measured_ms=None if measured is None else measured.median_ms,
                   device=table.profile.to_dict())
        print(json.dumps(out))
        return 0
    extra = {
        "strategy": args.rule,
        "device": table.profile.describe(),
        "latency": (f"target {target_ms:g} ms, predicted {sol.achieved / 1000:.3f} ms "
                    f"(adjacent steps {sol.below / 1000:.3f} / {sol.above / 1000:.3f} ms)"),
        "measured": measured_line(measured),
    }
    if phi is not None:
        extra["phi"] = f"{phi:g}"
    if s_factor is not None:
        extra["s"] = f"{s_factor:.4g} (nominal FLOPs factor, d·w²·r² = s)"
    print(format_summary(s, extra))
    return 0
