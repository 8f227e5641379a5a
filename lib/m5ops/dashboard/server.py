"""``m5ops dashboard``: Voila serving ``notebooks/dashboard.ipynb`` for one workspace.

Voila binds 127.0.0.1 unless told otherwise, and any other address requires a token. The
workspace reaches the notebook's kernel through ``$M5OPS_HOME``. Kernels of closed tabs are
culled after a minute; the dashboard's own widget updates do not count as activity, so a tab
left behind does not keep its kernel alive for ever.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from m5ops.errors import DashboardError, M5opsError
from m5ops.notebooks import NOTEBOOKS_DIR
from m5ops.stores.layout import Workspace

log = logging.getLogger("m5ops.dashboard.server")
NOTEBOOK = NOTEBOOKS_DIR / "dashboard.ipynb"
CULL_IDLE_S = 60
CULL_INTERVAL_S = 30
STOP_GRACE_S = 10.0
PREHEAT = os.environ.get("M5OPS_DASHBOARD_PREHEAT", "1") != "0"
# jupyter_server's defaults, plus the comm traffic of widgets, so that a dashboard refreshing
# itself in a tab nobody has open any more still counts as idle and gets culled
UNTRACKED = ["comm_info_request", "comm_info_reply", "kernel_info_request", "kernel_info_reply",
             "shutdown_request", "shutdown_reply", "interrupt_request", "interrupt_reply",
             "debug_request", "debug_reply", "stream", "display_data", "update_display_data",
             "execute_input", "execute_result", "error", "status", "clear_output", "debug_event",
             "input_request", "input_reply", "comm_msg", "comm_open", "comm_close"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(host: str, port: int, token: str | None) -> None:
    """Refuse a non-loopback address without a token, a bad port, or a port in use."""
    if not is_loopback(host) and not token:
        raise DashboardError(
            f"refusing to serve the dashboard on {host}: it can start trainings and delete models, so"
            f" any address but 127.0.0.1 needs a token: add --token SECRET (or use --host 127.0.0.1)")
    if not 1 <= port <= 65535:
        raise DashboardError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DashboardError(f"cannot listen on {host}:{port} ({exc.strerror}): is another dashboard"
                                 f" running? pick another port with --port") from None


def voila_command(host: str = "127.0.0.1", port: int = 8866, token: str | None = None,
                  notebook: Path = NOTEBOOK, preheat: bool = PREHEAT) -> list[str]:
    """The Voila command line: exactly this address and port, culling of idle kernels."""
    command = [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
               f"--VoilaConfiguration.preheat_kernel={preheat}",
               f"--Voila.ip={host}", "--Voila.port_retries=0",
               f"--MappingKernelManager.cull_idle_timeout={CULL_IDLE_S}",
               f"--MappingKernelManager.cull_interval={CULL_INTERVAL_S}",
               *[f"--MappingKernelManager.untracked_message_types={t}" for t in UNTRACKED]]
    if token:
        command.append(f"--Voila.token={token}")
    if is_loopback(host):
        command.append("--VoilaConfiguration.show_tracebacks=True")  # only ever shown to this machine
    return command


def url(host: str, port: int, token: str | None = None) -> str:
    """The address to open in a browser."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def wait_for_port(host: str, port: int, process: subprocess.Popen | None = None, timeout_s: float = 60.0) -> bool:
    """True once something accepts connections on host:port (a socket connect: no kernel started)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM (Voila stops its kernels and exits), then SIGKILL after ``grace_s``; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.warning("Voila (pid %s) did not stop in %.0f s: killing it", process.pid, grace_s)
            process.kill()
            process.wait()
    return process.returncode


class _Stop(Exception):
    """SIGTERM received by ``m5ops dashboard``."""


def _raise_stop(_signum, _frame):
    raise _Stop()


def serve(workspace: Workspace, host: str = "127.0.0.1", port: int = 8866, token: str | None = None) -> str:
    """Run Voila on the dashboard until Ctrl-C or SIGTERM; stops it cleanly either way."""
    workspace.require()
    if not NOTEBOOK.is_file():
        raise DashboardError(f"the dashboard notebook {NOTEBOOK} is missing: reinstall m5ops from its repository")
    check_address(host, port, token)
    env = {**os.environ, "M5OPS_HOME": str(workspace.home)}
    process = subprocess.Popen(voila_command(host, port, token), env=env, cwd=str(NOTEBOOK.parent))
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        if wait_for_port(host, port, process):
            print(f"m5ops dashboard of {workspace.home}: {url(host, port, token)}  (Ctrl-C stops it)", flush=True)
        code = process.wait()
    except (KeyboardInterrupt, _Stop):
        # asked to stop: Voila 0.5.13 with pre-heated kernels may exit 1 after shutting its pool
        # kernel down twice (a 404 traceback at exit); that is still a clean stop
        stop(process)
        return "dashboard stopped"
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            stop(process)
    if code != 0:
        raise DashboardError(f"Voila exited with status {code}; see its messages above")
    return "dashboard stopped"
