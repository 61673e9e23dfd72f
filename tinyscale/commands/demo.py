"""`tinyscale demo`: placeholder main job until the demo study exists.

Prints the scaling table: at each published TinyNet's FLOPs ratio (or at --ratios), the
EfficientNet compound recipe (φ solved) and the single-axis recipes next to it.
"""

from __future__ import annotations

import argparse
import json

from tinyscale.commands.scale import add_base_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the scaling table: TinyNet-A..E vs EfficientNet compound vs single-axis")
    p.add_argument("--ratios", type=float, nargs="+", default=None,
                   help="target FLOPs ratios (default: the ratios of TinyNet-A..E)")
    add_base_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from baselines.common import check_target
    from baselines.table import format_scaling_table, scaling_table

    for c in args.ratios or ():
        check_target(c)
    rows = scaling_table(args.ratios, base_resolution=args.base_resolution, num_classes=args.num_classes)
    if args.json:
        print(json.dumps({"rows": [row.to_dict() for row in rows]}))
    else:
        print(format_scaling_table(rows))
    return 0
