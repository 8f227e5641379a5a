"""``python -m m5ops.cli.demo``: a workspace, the runner in demo mode and the dashboard, stopped together.

    python -m m5ops.cli.demo [--home workspace] [--day-seconds 20] [--port 8866]

Initialises the workspace on the embedded synthetic default if there is none, starts
``m5ops runner --day-seconds N`` and ``m5ops dashboard`` as child processes, prints the
dashboard's address, and on Ctrl-C or SIGTERM stops both (SIGTERM, then SIGKILL after a grace
period): the runner lets its current run finish for a while, Voila stops its kernels. If either
child dies, the other is stopped too and the demo exits with an error.
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path

from m5ops.dashboard import server
from m5ops.stores.layout import Workspace, default_home

RUNNER_GRACE_S = 40.0  # the runner gives its current run 30 s to finish
DASHBOARD_GRACE_S = 15.0


def m5ops_command(home: Path, *args: str) -> list[str]:
    """The m5ops CLI, run by this interpreter, on workspace ``home``."""
    return [sys.executable, "-m", "m5ops.cli", "--home", str(home), *args]


def stop_child(name: str, process: subprocess.Popen, grace_s: float) -> int:
    """SIGTERM, then SIGKILL after ``grace_s`` (``server.stop``, which logs the kill); the exit code."""
    if process.poll() is None:
        print(f"demo: stopping the {name} (pid {process.pid})", flush=True)
    return server.stop(process, grace_s)


def run_demo(home: Path, day_seconds: float, port: int) -> int:
    """Init if needed, start both children, wait for a signal or a child's end, stop both."""
    workspace = Workspace(home)
    if not workspace.exists():
        print(f"demo: no workspace at {workspace.home}: initialising one on the embedded synthetic data", flush=True)
        # executed notebooks go to ./outputs, the project's top-level folder for them
        outputs = str(Path("outputs").resolve())
        if subprocess.call(m5ops_command(workspace.home, "init", "--outputs", outputs)) != 0:
            return 2
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    # own sessions: Ctrl-C reaches only this process, which stops the children once, in order
    runner = subprocess.Popen(m5ops_command(workspace.home, "runner", "--day-seconds", f"{day_seconds:g}"),
                              start_new_session=True)
    dashboard = subprocess.Popen(m5ops_command(workspace.home, "dashboard", "--port", str(port)),
                                 start_new_session=True)
    children = {"runner": runner, "dashboard": dashboard}
    try:
        if server.wait_for_port("127.0.0.1", port, dashboard):
            print(f"\ndemo: open {server.url('127.0.0.1', port)}  (one simulated day every {day_seconds:g} s;"
                  f" Ctrl-C stops the runner and the dashboard)\n", flush=True)
        while not stop.wait(0.5):
            dead = [name for name, child in children.items() if child.poll() is not None]
            if dead:
                print(f"demo: the {dead[0]} exited with status {children[dead[0]].returncode}; stopping", flush=True)
                break
    finally:
        stop_child("dashboard", dashboard, DASHBOARD_GRACE_S)
        stop_child("runner", runner, RUNNER_GRACE_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = not stop.is_set()
    print("demo: stopped" + (" after a child failed" if failed else ""), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m5ops.cli.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="workspace folder (default: $M5OPS_HOME, else ./workspace)")
    parser.add_argument("--day-seconds", type=float, default=20.0, help="one simulated day every N seconds")
    parser.add_argument("--port", type=int, default=8866)
    args = parser.parse_args(argv)
    return run_demo(Path(args.home) if args.home else default_home(), args.day_seconds, args.port)


if __name__ == "__main__":
    sys.exit(main())
