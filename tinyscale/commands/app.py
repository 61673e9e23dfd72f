"""`tinyscale app`: open the design assistant (a Streamlit page) on a study.

The page itself is `app/main.py`; this command only starts `streamlit run` on it, headless (it
prints the URL instead of opening a browser, so it also works over SSH and in CI).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

# DEMO_STUDY_DIR (the demo's study, what the app opens by default) and STUDY_ENV (how the page
# learns its study: Streamlit owns the script's argv) live in a leaf module the page imports too.
from tinyscale.commands.options import add_latency_table_option, latency_table_paths
from tinyscale.defaults import DEMO_STUDY_DIR, DEVICES_ENV, STUDY_ENV

DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"


def app_script() -> Path:
    """Path of the Streamlit page (`app/main.py` next to the `tinyscale` package)."""
    here = Path(__file__).resolve().parents[2] / "app" / "main.py"
    if here.is_file():
        return here
    import importlib.util

    spec = importlib.util.find_spec("app.main")
    if spec is None or spec.origin is None:
        raise ValueError("the design assistant page (app/main.py) is not installed; reinstall tinyscale[app]")
    return Path(spec.origin)


def streamlit_command(study_dir: str | os.PathLike, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> list[str]:
    """The `streamlit run` command line that serves the page for ``study_dir`` (headless)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_script()),
        "--server.headless", "true",
        "--server.port", str(int(port)),
        "--server.address", host,
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        # A local design tool: no "Deploy" button or developer menu in the page.
        "--client.toolbarMode", "viewer",
        "--", "--study", str(Path(study_dir).resolve()),
    ]


def _check_port_free(host: str, port: int) -> None:
    """A clear error before starting, instead of Streamlit's log line and a silent exit."""
    import errno
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"--host {host} is not an address this machine can serve on ({exc})") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"--host {host} is not an address of this machine ({exc.strerror})") from None
            raise ValueError(
                f"port {port} on {host} is not available ({exc.strerror or exc}); "
                "another app may be serving there: pass --port P"
            ) from None


def check_app(port: int, host: str = DEFAULT_HOST) -> None:
    """Everything `launch` needs, checked before anything slow (the demo trains first)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    try:
        import streamlit  # noqa: F401
    except ModuleNotFoundError:
        raise ValueError("the design assistant needs Streamlit: pip install 'tinyscale[app]'") from None
    _check_port_free(host, port)


def launch(study_dir: str | os.PathLike = DEMO_STUDY_DIR, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST,
           devices: list[str] | tuple[str, ...] = ()) -> int:
    """Serve the design assistant until interrupted; returns streamlit's exit code.

    A missing study is not an error here: the page explains how to create it.
    """
    check_app(port, host)
    from tinyscale.latency import LatencyTable

    for path in devices:
        LatencyTable.load(path)  # a bad table is the user's to fix, before the server starts
    cmd = streamlit_command(study_dir, port, host)
    env = dict(os.environ, **{STUDY_ENV: str(Path(study_dir).resolve()),
                              DEVICES_ENV: os.pathsep.join(str(Path(p).resolve()) for p in devices)})
    print(f"tinyscale app: study {Path(study_dir).resolve()} at http://{host}:{port}  (Ctrl-C stops)", flush=True)
    server = subprocess.Popen(cmd, env=env)
    # Whoever stops this command (Ctrl-C, a test's terminate()) stops the server with it: without
    # this, SIGTERM would end the launcher and leave streamlit serving on its own.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="open the design assistant (Streamlit) on a study")
    p.add_argument("--study", default=DEMO_STUDY_DIR,
                   help=f"study directory (default: ./{DEMO_STUDY_DIR}, the one `tinyscale demo` creates)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    add_latency_table_option(p, "a latency table to offer as a budget (repeatable; the study's DIR/latency.json "
                                "is always offered)", repeat=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return launch(args.study, port=args.port, host=args.host, devices=latency_table_paths(args))
