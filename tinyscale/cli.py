"""The `tinyscale` command line: argparse subcommands, each a thin call into the library.

Each subcommand lives in `tinyscale/commands/<name>.py` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args and returning an
exit code). Command modules import heavy libraries (torch, botorch, streamlit) inside their
``func`` only, so `tinyscale inspect` answers without loading torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order of `tinyscale --help`.
COMMANDS = ("demo", "inspect", "scale", "study", "trials", "fit", "fidelity", "recipe", "export", "compare", "app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyscale",
        description="Find the (resolution, width, depth) recipe for EfficientNet-B0 at a FLOPs budget.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tinyscale.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tinyscale.commands.{name}":
                raise
            # Every listed command ships with tinyscale: one missing is a broken install.
            raise ImportError(f"the module of `tinyscale {name}` (tinyscale.commands.{name}) is missing; "
                              "the installation is incomplete, reinstall tinyscale") from exc
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        # Bad input is the user's to fix: one clear line, no traceback.
        print(f"tinyscale {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinyscale {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
