"""Options several commands share, written once: where training runs (`add_execution_options`)."""

from __future__ import annotations

import argparse

from tinyscale.study.executors import EXECUTORS


def add_execution_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, unit: str = "runs",
                          restart: str | None = None) -> None:
    """``--executor/--workers/--threads/--address/--no-progress`` (and ``--restart`` with the
    given help, for commands that keep a result store). ``unit`` names what trains ("trials")."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help=f"where {unit} train (default local)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"{unit} in parallel, local processes or Ray actors (default: one per core, 1 thread each)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores // workers; 1 is fastest on a busy machine)")
    parser.add_argument("--address", help="Ray cluster address (with --executor ray; default: start a local Ray)")
    if restart is not None:
        parser.add_argument("--restart", action="store_true", help=restart)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_execution_options(args: argparse.Namespace) -> None:
    """ValueError for bad execution options, before anything is loaded or trained."""
    from tinyscale.study.executors import check_execution

    check_execution(args.executor, args.workers, args.threads, args.address)


def executor_from(args: argparse.Namespace):
    """The executor the execution options ask for (validated first)."""
    from tinyscale.study.executors import make_executor

    return make_executor(args.executor, args.workers, address=args.address, threads=args.threads)
