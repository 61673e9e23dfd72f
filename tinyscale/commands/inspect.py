"""`tinyscale inspect`: the exact network and cost of one recipe."""

from __future__ import annotations

import argparse
import json

from tinyscale.space.recipe import RULE_SETS


def add_base_args(p: argparse.ArgumentParser) -> None:
    """Context options of every command that prints a recipe (`scale`'s strategies fix their
    own rule set, so it takes these alone)."""
    p.add_argument("--base-resolution", type=int, default=224, help="side length r multiplies (default 224)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_context_args(p: argparse.ArgumentParser) -> None:
    """The options that place a recipe in context: the rule set and the base options."""
    p.add_argument("--rules", choices=RULE_SETS, default="tinynet", help="rounding rule set (default: tinynet)")
    add_base_args(p)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="architecture, MACs and params of a recipe")
    p.add_argument("--r", type=float, required=True, help="resolution multiplier")
    p.add_argument("--w", type=float, required=True, help="width multiplier")
    p.add_argument("--d", type=float, required=True, help="depth multiplier")
    add_context_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyscale.space.recipe import Recipe
    from tinyscale.space.summary import format_summary, summarize

    recipe = Recipe(r=args.r, w=args.w, d=args.d, rules=args.rules,
                    base_resolution=args.base_resolution, num_classes=args.num_classes)
    s = summarize(recipe)
    print(json.dumps(s.to_dict()) if args.json else format_summary(s))
    return 0
