"""Options several commands share, written once: where training runs (`add_execution_options`,
`add_device_option`) and the latency table a command reads (`add_latency_table_option`).

``--device`` names where runs train (auto, cpu, cuda, cuda:N). It used to name a latency table
(now ``--latency-table FILE``); for one release a ``--device`` value that is an existing file is
still read as a table, with a deprecation line (`latency_table_path`).
"""

from __future__ import annotations

import argparse
import os
import sys

from tinyscale.study.executors import EXECUTORS
from tinyscale.train.device import DEVICE_PATTERN, PRECISIONS

DEVICE_CHOICES = "auto|cpu|cuda|cuda:N"
DEVICE_NAMES = "auto, cpu, cuda or cuda:N"
DEPRECATED_DEVICE = "--device FILE is deprecated: use --latency-table FILE"
TABLE_HELP = "a latency table (`tinyscale latency-table --out FILE`), possibly measured on another machine"


def add_device_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, what: str = "runs train",
                      gpus: str = "") -> None:
    """``--device auto|cpu|cuda|cuda:N`` (checked when the command runs: it needs torch)."""
    parser.add_argument("--device", default=None, metavar=DEVICE_CHOICES,
                        help=f"where {what}: auto (default: CUDA when torch sees a GPU), cpu, cuda or cuda:N{gpus}")


def add_precision_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="fp32 (default; results comparable across devices), bf16 or fp16 (autocast, "
                             "fp16 with a gradient scaler: for GPUs without bf16)")


def add_latency_table_option(parser: argparse.ArgumentParser, help: str, *, repeat: bool = False,
                             trains: bool = False) -> None:
    """``--latency-table FILE`` (``repeat``: the option may be given several times). A command
    that does not train (``trains`` False) keeps ``--device FILE``, hidden, as its old name."""
    if repeat:
        parser.add_argument("--latency-table", action="append", default=[], metavar="FILE", help=help)
    else:
        parser.add_argument("--latency-table", default=None, metavar="FILE", help=help)
    if not trains:
        parser.add_argument("--device", action="append" if repeat else "store", default=[] if repeat else None,
                            metavar="FILE", help=argparse.SUPPRESS)


def _deprecated_device(args: argparse.Namespace) -> None:
    print(f"tinyscale {getattr(args, 'command', 'command')}: note: {DEPRECATED_DEVICE}", file=sys.stderr)


def latency_table_path(args: argparse.Namespace, *, trains: bool = False) -> str | None:
    """The latency table the command was given: ``--latency-table FILE``, or ``--device FILE``
    read as one with a deprecation line on stderr (then ``args.device`` is cleared). A command
    that ``trains`` reads ``--device`` as a table only when it names an existing file and no
    device (auto, cpu, cuda, cuda:N)."""
    value = getattr(args, "device", None)
    if value is None or (trains and (value == "auto" or DEVICE_PATTERN.match(value))):
        return args.latency_table
    if trains and not os.path.exists(value):
        raise ValueError(f"--device must be {DEVICE_NAMES}, got {value!r} "
                         "(a latency table is given as --latency-table FILE)")
    if args.latency_table is not None:
        raise ValueError(f"--device {value} is the old name of --latency-table, given too "
                         f"({args.latency_table}): give the table once, as --latency-table FILE")
    _deprecated_device(args)
    args.device, args.latency_table = None, value
    return value


def latency_table_paths(args: argparse.Namespace) -> list[str]:
    """`latency_table_path` for a repeatable ``--latency-table``: every table given, the
    deprecated ``--device FILE`` ones included (one deprecation line for them all)."""
    if args.device:
        _deprecated_device(args)
    return [*args.latency_table, *args.device]


def device_of(args: argparse.Namespace) -> str:
    """The ``--device`` asked for (auto when not given); ValueError, one line, for another name."""
    device = "auto" if args.device is None else args.device
    if device != "auto" and not DEVICE_PATTERN.match(device):
        raise ValueError(f"--device must be {DEVICE_NAMES}, got {device!r}")
    return device


def _gpu_list(text: str) -> tuple[int, ...]:
    try:
        gpus = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU indices such as 0,1, got {text!r}") from None
    return gpus


def add_execution_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, unit: str = "runs",
                          restart: str | None = None) -> None:
    """``--executor/--workers/--threads/--address/--no-progress`` (and ``--restart`` with the
    given help, for commands that keep a result store). ``unit`` names what trains ("trials")."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help=f"where {unit} train (default local)")
    parser.add_argument("--workers", type=int, default=None,
                        help=f"{unit} in parallel, local processes or Ray actors (default: one per core, 1 thread "
                             "each; on GPUs: GPUs x --trials-per-gpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores // workers; 1 is fastest on a busy machine)")
    parser.add_argument("--address", help="Ray cluster address (with --executor ray; default: start a local Ray)")
    add_device_option(parser, what=f"{unit} train", gpus=" (cuda and auto: every GPU, unless --gpus)")
    parser.add_argument("--gpus", type=_gpu_list, default=None, metavar="0,1",
                        help="local executor: the GPUs to train on, one worker each (default: every GPU torch sees); "
                             "each worker sees only its GPU (CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--trials-per-gpu", type=int, default=None, metavar="K",
                        help=f"{unit} training at once on each GPU (default 1; tiny networks leave a GPU mostly idle). "
                             "Ray: each reserves 1/K of a GPU")
    if restart is not None:
        parser.add_argument("--restart", action="store_true", help=restart)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_execution_options(args: argparse.Namespace) -> None:
    """ValueError for bad execution options, before anything is loaded or trained: ``--device
    cuda`` without a GPU, a GPU index that is not there (asks torch; Ray's GPUs are checked when
    it starts)."""
    from tinyscale.study.executors import check_execution
    from tinyscale.study.placement import check_placement

    check_execution(args.executor, args.workers, args.threads, args.address)
    check_placement(args.executor, args.workers, device_of(args), args.gpus, args.trials_per_gpu)


def executor_from(args: argparse.Namespace):
    """The executor the execution options ask for (validated first)."""
    from tinyscale.study.executors import make_executor

    return make_executor(args.executor, args.workers, address=args.address, threads=args.threads,
                         device=device_of(args), gpus=args.gpus, trials_per_gpu=args.trials_per_gpu)
