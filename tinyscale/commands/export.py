"""`tinyscale export`: the recipe for a target as recipe.json + safetensors + ONNX."""

from __future__ import annotations

import argparse

from tinyscale.commands.options import add_device_option, device_of
from tinyscale.commands.recipe import add_target_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export the network for a target: recipe.json, safetensors, ONNX",
        description="Solve the recipe for the target from the study's fit and write PATH: a directory, or "
        "an archive when PATH ends in .zip/.tar/.tar.gz/.tgz. The ONNX file is verified against "
        "onnxruntime before it is written. Weights are random (seeded) unless --train-steps trains the "
        "network on the study's data first. Rebuild it with tinyscale.load_exported(PATH).",
    )
    p.add_argument("study_dir", metavar="DIR", help="a study directory with a fit (tinyscale fit)")
    add_target_args(p)
    p.add_argument("--out", required=True, metavar="PATH", help="output directory or .zip/.tar/.tar.gz archive")
    p.add_argument("--format", default="safetensors,onnx", help="comma-separated: safetensors, onnx (default both)")
    p.add_argument("--train-steps", type=int, default=0, help="train this many steps on the study's data (default 0)")
    add_device_option(p, what="--train-steps trains")
    p.add_argument("--seed", type=int, default=0, help="weight-init / training seed (default 0)")
    p.add_argument("--force", action="store_true", help="replace an existing export or archive at PATH")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tinyscale.assistant.fit_source import stale_fit_note
    from tinyscale.export import export_from_study, parse_formats
    from tinyscale.fit.solve import RecipeSolver
    from tinyscale.limits import MAX_STEPS

    formats = parse_formats(args.format)
    if args.train_steps < 0:
        raise ValueError(f"--train-steps must be 0 or more, got {args.train_steps}")
    if args.train_steps > MAX_STEPS:
        raise ValueError(f"--train-steps must be at most {MAX_STEPS:,}, got {args.train_steps:,}")
    device = "cpu"
    if args.device is not None and not args.train_steps:
        raise ValueError("--device goes with --train-steps (an untrained export is built on the CPU)")
    if args.train_steps:
        from tinyscale.train.device import resolve_device

        device = resolve_device(device_of(args))  # --device cuda without a GPU: one line before any work
    c = args.ratio
    if args.macs is not None:
        c = RecipeSolver.load(args.study_dir).ratio_for_macs(args.macs)
    result = export_from_study(args.study_dir, c, args.out, formats=formats, train_steps=args.train_steps,
                               seed=args.seed, force=args.force, device=device, show_progress=True)
    a = result.answer
    m = result.bundle.manifest
    print(f"recipe   r={a.recipe.r:g} w={a.recipe.w:g} d={a.recipe.d:g} ({a.recipe.rules}), "
          f"{a.resolution}x{a.resolution} px, {m['macs']:,} MACs (c={a.achieved:.4g} for target {a.target:.4g}), "
          f"{m['params']:,} params")
    weights = m["weights"]
    if weights["init"] == "trained":
        print(f"weights  trained {weights['steps']} steps on {weights['data']}: held-out accuracy {weights['accuracy']:.4f}")
    else:
        print(f"weights  random init (seed {weights['seed']})")
    for name, data in sorted(result.bundle.files.items()):
        print(f"file     {name} ({len(data):,} bytes)")
    stale = stale_fit_note(args.study_dir, result.fit)
    for note in result.notes + ((stale,) if stale else ()):
        print(f"note     {note}")
    print(f"wrote    {result.path}")
    return 0
