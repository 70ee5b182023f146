"""`servesim app`: start the Streamlit app (a plugin command, so `sim` never imports `app`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MAIN = Path(__file__).resolve().parent / "main.py"
DEFAULT_PORT = 8501
DEFAULT_MAX_UPLOAD_MB = 200  # traces of a few million rows; bigger ones belong on the CLI


def add_commands(commands: argparse._SubParsersAction) -> None:
    app = commands.add_parser(
        "app", help="start the web app (Explore, Compare, Plan, Traces, Calibration)",
        description="Start the servesim web app and print its address. It runs headless (no "
        "browser is opened), so it works on a server; open the printed URL yourself.")
    app.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    app.add_argument("--address", default="localhost",
                     help="interface to listen on (0.0.0.0 to serve other machines)")
    app.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD_MB,
                     help="largest trace or scenario file the app accepts")
    app.set_defaults(handler=_run_app)


def streamlit_command(port: int, address: str, max_upload_mb: int) -> list[str]:
    """The command line that serves the app (also used by the browser test)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(MAIN),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--server.maxUploadSize", str(max_upload_mb),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--theme.base", "light",
        "--client.toolbarMode", "viewer",  # no developer menu for planners
    ]


def _run_app(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        print(f"error: --port {args.port} is not a port number (1-65535)", file=sys.stderr)
        return 2
    if args.max_upload_mb < 1:
        print("error: --max-upload-mb must be at least 1", file=sys.stderr)
        return 2
    command = streamlit_command(args.port, args.address, args.max_upload_mb)
    os.environ["SERVESIM_MAX_UPLOAD_MB"] = str(args.max_upload_mb)
    print(f"servesim app: http://{args.address}:{args.port}  (Ctrl+C stops it)", flush=True)
    os.execv(command[0], command)  # the server replaces this process: signals reach it directly
    return 0  # not reached
