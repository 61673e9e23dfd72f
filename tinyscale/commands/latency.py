"""`tinyscale latency`: a recipe's inference latency, measured here and/or predicted from a table."""

from __future__ import annotations

import argparse

from tinyscale.commands.inspect import add_context_args
from tinyscale.commands.options import TABLE_HELP, add_latency_table_option, latency_table_path


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """--engine/--threads/--batch (shared with `tinyscale latency-table`); None = the default or
    the --latency-table profile's."""
    p.add_argument("--engine", choices=("torch", "onnxruntime"), default=None,
                   help="torch (eval, channels-last, inference mode) or onnxruntime (the exported ONNX graph); "
                        "default torch")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads, fixed while timing (default 1)")
    p.add_argument("--batch", type=int, default=None, help="images per inference (default 1)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "latency", help="inference latency of a recipe: measured here, or predicted from a device table",
        description="Measures the built network (warm-up, then timed runs; median and interquartile range) "
                    "with a fixed thread count. With --latency-table the table predicts it, and it is measured too "
                    "when the table was measured on this machine with this engine.",
    )
    p.add_argument("--r", type=float, required=True, help="resolution multiplier")
    p.add_argument("--w", type=float, required=True, help="width multiplier")
    p.add_argument("--d", type=float, required=True, help="depth multiplier")
    add_context_args(p)
    add_engine_args(p)
    add_latency_table_option(p, TABLE_HELP)
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 10)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default 50)")
    p.set_defaults(func=run)


def engine_settings(args: argparse.Namespace, table=None) -> tuple[str, int, int]:
    """(engine, threads, batch): the options, or the profile's where a table is given; an option
    that contradicts the profile is an error."""
    given = {"engine": args.engine, "threads": args.threads, "batch": args.batch}
    if table is None:
        return (args.engine or "torch", 1 if args.threads is None else args.threads,
                1 if args.batch is None else args.batch)
    prof = table.profile
    for name, value in given.items():
        if value is not None and value != getattr(prof, name):
            raise ValueError(f"--{name} {value} contradicts the device table, measured with {name} "
                             f"{getattr(prof, name)}; leave it out or build a table with it")
    return prof.engine, prof.threads, prof.batch


def is_this_machine(table) -> bool:
    from tinyscale.latency import DeviceProfile

    p = table.profile
    return p.same_device(DeviceProfile.current(p.engine, p.threads, p.batch))


def measure_if_here(table, recipe, args: argparse.Namespace):
    """One real measurement of ``recipe`` with the table's setting when the table was measured
    on this machine (`LatencyStats`), else None: what `recipe` and `scale` verify a predicted
    answer with."""
    if not is_this_machine(table):
        return None
    p = table.profile
    return measurer_for(p.engine, p.threads, p.batch, args).measure_recipe(recipe)


def measured_line(measured) -> str:
    if measured is None:
        return "not here (the table is another device's or setting's)"
    return (f"{measured.median_ms:.3f} ms median, IQR {measured.iqr_us / 1000:.3f} ms "
            f"(this machine, {measured.runs} runs)")


def measurer_for(engine: str, threads: int, batch: int, args: argparse.Namespace):
    from tinyscale.latency import NETWORK_REPEATS, NETWORK_WARMUP, Measurer

    warmup = NETWORK_WARMUP if getattr(args, "warmup", None) is None else args.warmup
    repeats = NETWORK_REPEATS if getattr(args, "repeats", None) is None else args.repeats
    return Measurer(engine=engine, threads=threads, batch=batch, warmup=warmup, repeats=repeats)


def run(args: argparse.Namespace) -> int:
    from tinyscale.space.cost import cost
    from tinyscale.storage import finite_json
    from tinyscale.latency import LatencyTable
    from tinyscale.space.recipe import Recipe

    recipe = Recipe(r=args.r, w=args.w, d=args.d, rules=args.rules, base_resolution=args.base_resolution,
                    num_classes=args.num_classes)
    table_path = latency_table_path(args)
    table = LatencyTable.load(table_path) if table_path else None
    engine, threads, batch = engine_settings(args, table)
    measurer = measurer_for(engine, threads, batch, args)  # validates the counts before any work
    out: dict = {"recipe": recipe.to_dict(), "resolution": recipe.resolution, "macs": cost(recipe).macs,
                 "engine": engine, "threads": threads, "batch": batch, "predicted": None, "measured": None}
    if table is not None:
        pred = table.predict(recipe)
        out["predicted"] = {"latency_us": pred.latency_us, "summed_us": pred.summed_us, "parts": pred.parts,
                            "estimated_parts": pred.estimated}
        out["device"] = table.profile.to_dict()
    if table is None or is_this_machine(table):
        stats = measurer.measure_recipe(recipe)
        out["measured"] = stats.to_dict()
        out["device"] = measurer.profile().to_dict() if table is None else out["device"]
    if args.json:
        print(finite_json(out))
        return 0
    print(f"recipe     r={recipe.r:g}  w={recipe.w:g}  d={recipe.d:g}  ({recipe.rules} rules), "
          f"{recipe.resolution}x{recipe.resolution} px, {out['macs'] / 1e6:.2f}M MACs")
    dev = out["device"]
    print(f"device     {dev['cpu']}, {engine} {dev['engine_version']}, {threads} thread(s), batch {batch}")
    if out["predicted"] is not None:
        p = out["predicted"]
        est = f", {p['estimated_parts']} of {p['parts']} parts estimated from neighbours" if p["estimated_parts"] else ""
        print(f"predicted  {p['latency_us'] / 1000:.3f} ms (table {table_path}{est})")
    if out["measured"] is not None:
        m = out["measured"]
        print(f"measured   {m['median_us'] / 1000:.3f} ms median, IQR {m['iqr_us'] / 1000:.3f} ms "
              f"({m['runs']} runs after {m['warmup']} warm-up)")
    elif table is not None:
        print("measured   not here: the table was measured on another device or setting")
    return 0
