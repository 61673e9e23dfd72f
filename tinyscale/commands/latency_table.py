"""`tinyscale latency-table`: measure this machine's per-part latency table and write it."""

from __future__ import annotations

import argparse

from tinyscale.commands.latency import add_engine_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "latency-table", help="measure this machine's latency table (a portable device profile)",
        description="Times every distinct part (stem, block, head) of a grid of recipes, then whole "
                    "networks to calibrate the sum, and writes one JSON file to use with --latency-table "
                    "(here or on another machine).",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the table (JSON)")
    add_engine_args(p)
    p.add_argument("--grid", choices=("default", "small"), default="default",
                   help="default: 7 input sides x 6 widths; small: 3 x 3 (a quick, coarser table)")
    p.add_argument("--sides", default=None, metavar="PX,PX,...",
                   help="input sides of the grid in pixels, replacing --grid's (e.g. 16,24,32,48 for a study at "
                        "base 32 px)")
    p.add_argument("--widths", default=None, metavar="W,W,...", help="width multipliers of the grid, replacing --grid's")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs of the heads timed (default 1000)")
    p.add_argument("--correction", choices=("linear", "gp"), default="gp",
                   help="how the sum of parts is corrected to whole networks: gp (default: a linear fit times a GP "
                        "over the network's shape, fitted on 32 networks drawn from the grid's box; 5.4 %% error on "
                        "unseen recipes with either engine) or linear (8 networks; 15 %% on onnxruntime)")
    p.add_argument("--calibration", type=int, default=None,
                   help="whole networks timed for the correction (default 8 linear, 32 gp)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per whole network (default 50)")
    p.add_argument("--part-repeats", type=int, default=None, help="timed runs per part (default 25)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--force", action="store_true", help="replace an existing file at --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tinyscale.commands.latency import engine_settings, measurer_for
    from tinyscale.latency import PART_REPEATS, build_table
    from tinyscale.limits import MAX_RUNS

    check_out(args.out, args.force)  # before minutes of timing, not after
    if args.calibration is not None and args.calibration > MAX_RUNS:
        raise ValueError(f"--calibration must be at most {MAX_RUNS:,} networks, got {args.calibration:,}")
    engine, threads, batch = engine_settings(args)
    measurer = measurer_for(engine, threads, batch, args)
    if args.part_repeats is not None:
        measurer = replace(measurer, part_repeats=args.part_repeats)
    else:
        measurer = replace(measurer, part_repeats=PART_REPEATS)
    sides = None if args.sides is None else _numbers(args.sides, int, "--sides")
    widths = None if args.widths is None else _numbers(args.widths, float, "--widths")
    table = build_table(measurer, grid=args.grid, calibration=args.calibration, progress=not args.no_progress,
                        sides=sides, widths=widths, num_classes=args.num_classes, correction=args.correction)
    path = table.save(args.out)
    cal = table.calibration
    print(f"wrote {path}: {len(table.entries)} parts, {len(cal.points)} calibration networks")
    print(f"device     {table.profile.describe()}")
    gp = " x exp(GP of the shape)" if cal.kind == "gp" else ""
    print(f"correction measured = ({cal.slope:.3f} x summed + {cal.per_part_us:.1f} us x parts + "
          f"{cal.intercept_us:.0f} us){gp}")
    return 0


def _numbers(text: str, kind, option: str) -> list:
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{option} takes comma-separated numbers, got {text!r}") from None



def check_out(out: str, force: bool) -> None:
    """ValueError when the table could not, or must not, be written to ``out``: empty, a
    directory, a missing directory, or an existing file (unless ``force``)."""
    from pathlib import Path

    if not out.strip():
        raise ValueError("--out is empty: give the file to write the table to")
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name")
    if not path.parent.is_dir():
        raise ValueError(f"--out {out}: the directory {path.parent} does not exist")
    if (path.exists() or path.is_symlink()) and not force:
        raise ValueError(f"--out {out} already exists; choose another file, or pass --force to replace it")
