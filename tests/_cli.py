"""Running the command line in-process, as the hardening tests do."""

from __future__ import annotations

from tinyscale.cli import main


def cli(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``tinyscale ARGV`` (arguments str()-ed; argparse's usage
    errors give their SystemExit code)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
