"""The `tinyscale` command line: argparse subcommands, each a thin call into the library.

Each subcommand lives in `tinyscale/commands/<name>.py` (dashes in the name become underscores) and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (a callable taking the parsed args and returning an
exit code). Command modules import heavy libraries (torch, botorch, streamlit) inside their
``func`` only, so `tinyscale inspect` answers without loading torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order of `tinyscale --help`.
COMMANDS = ("demo", "inspect", "scale", "data", "study", "trials", "fit", "fidelity", "recipe", "export", "compare",
            "latency", "latency-table", "app")


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (the usage itself is one `--help` away), and no
    abbreviated options: `fidelity --trials 1` would otherwise run as `--trials-per-gpu 1`, and a
    script's abbreviation would change meaning the day an option sharing its start is added."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tinyscale",
        description="Find the (resolution, width, depth) recipe for EfficientNet-B0 at a FLOPs budget.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module_name = f"tinyscale.commands.{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            # Every listed command ships with tinyscale: one missing is a broken install.
            raise ImportError(f"the module of `tinyscale {name}` ({module_name}) is missing; "
                              "the installation is incomplete, reinstall tinyscale") from exc
        module.register(sub)
    parser.set_defaults(_commands=sub.choices)
    return parser


def _os_error_text(exc: OSError) -> str:
    """"No space left on device: /x/model.zip" rather than "[Errno 28] ...", one line."""
    text = exc.strerror or str(exc)
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{text}: {' -> '.join(names)}" if names else text


def _silence_stdout() -> None:
    """After the reader of our stdout went away (`| head`): point stdout at /dev/null so the
    interpreter's final flush does not raise BrokenPipeError again at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (a test's capture)
        pass


def _one_line_warnings(where: str):
    """How a warning reaches the user while a command runs: one line, ``tinyscale CMD: note:
    ...``, without the source line Python's default display adds."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"{where}: note: {text}", file=sys.stderr if file is None else file)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run one command. The exit status is the one contract the README states: 0 done, 2 bad
    input or a damaged file (the user's to fix), 1 a fault of the machine (disk, permissions,
    memory), 130 Ctrl-C, 141 the reader of stdout went away; every failure is one line."""
    import warnings

    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # said by the command's parser, whose --help lists what it takes
        args._commands[args.command].error(f"unrecognized arguments: {' '.join(extras)}")
    del args._commands
    where = f"tinyscale {args.command}"
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(where)
        return _run(args, where)


def _run(args: argparse.Namespace, where: str) -> int:
    import sqlite3

    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except ValueError as exc:
        # Bad input is the user's to fix: one clear line, no traceback.
        print(f"{where}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # Whoever read our output stopped reading (`tinyscale recipe ... | head`): not an error
        # worth a message, and no traceback; the exit status says the output was cut short.
        _silence_stdout()
        return 141  # 128 + SIGPIPE, as a shell reports a pipe writer stopped by the signal
    except OSError as exc:
        # The machine's to fix (disk full, read-only or missing directory): one line. The
        # writers remove their temporary files and leave the old ones intact.
        print(f"{where}: error: {_os_error_text(exc)}", file=sys.stderr)
        return 1
    except sqlite3.OperationalError as exc:  # disk full, I/O, locked, cannot open: the machine's
        print(f"{where}: error: a study database could not be read or written: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:  # "malformed", "not a database": a damaged file
        print(f"{where}: error: a study database is damaged: {exc}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"{where}: error: a study database could not be read or written: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{where}: error: out of memory", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        from tinyscale.export.onnx import ExportCheckError

        if not isinstance(exc, ExportCheckError):
            raise  # a bug: its traceback is what a report needs
        print(f"{where}: error: {exc}", file=sys.stderr)  # the toolchain's fault, like the machine's
        return 1
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
