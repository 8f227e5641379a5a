"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, stopped by pid."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from m5ops.orchestration.processes import kill_tree

DASK = [str(Path(sys.executable).with_name("dask"))] if Path(sys.executable).with_name("dask").exists() \
    else [sys.executable, "-m", "dask"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One scheduler and named workers (each one run at a time: ``--resources m5ops_run=1``)."""

    def __init__(self, folder: Path, env: dict, workers: int = 2, nthreads: int = 1):
        self.folder, self.env, self.nthreads = folder, env, nthreads
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port), "--no-dashboard"])
        self._wait_listening()
        for i in range(1, workers + 1):
            self.add_worker(f"w{i}")
        self.wait_for_workers(workers)

    def _start(self, name: str, args: list[str]) -> None:
        with open(self.folder / f"dask-{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen([*DASK, *args], stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def add_worker(self, name: str) -> None:
        """Start a worker (no nanny: the process killed is the worker itself)."""
        self._start(name, ["worker", self.address, "--name", name, "--nthreads", str(self.nthreads), "--no-nanny",
                           "--no-dashboard", "--host", "127.0.0.1", "--resources", "m5ops_run=1",
                           "--memory-limit", "0", "--local-directory", str(self.folder / f"dask-{name}")])

    def _wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise AssertionError(f"the scheduler did not listen on {self.port}:\n{self.log('scheduler')}")

    def workers(self) -> dict[str, str]:
        """Worker name -> address, as the scheduler knows them now."""
        from distributed import Client

        with Client(self.address, timeout=10, set_as_default=False) as client:
            return {info["name"]: address for address, info in client.scheduler_info(n_workers=-1)["workers"].items()}

    def wait_for_workers(self, n: int, timeout: float = 90) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.workers()
            if len(found) >= n:
                return found
            time.sleep(0.3)
        raise AssertionError(f"{n} workers did not join:\n" + "\n".join(self.log(name) for name in self.processes))

    def log(self, name: str, tail: int | None = 3000) -> str:
        path = self.folder / f"dask-{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text

    def kill(self, name: str) -> list[int]:
        """SIGKILL one process (and what it started: a run's task process and kernel)."""
        return kill_tree(self.processes[name].pid)

    def close(self) -> None:
        """Stop every process this cluster started, and check by pid that each is gone."""
        for name, proc in reversed(list(self.processes.items())):
            kill_tree(proc.pid)
            proc.wait(10)
        left = [proc.pid for proc in self.processes.values() if psutil.pid_exists(proc.pid)
                and psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE]
        assert not left, f"dask processes still alive: {left}"


def cluster_env(base: dict) -> dict:
    """The environment for cluster processes: the test's (PYTHONPATH, plugins), quiet and on loopback."""
    return {**base, "DASK_DISTRIBUTED__WORKER__DAEMON": "False", "PYTHONUNBUFFERED": "1",
            "MALLOC_TRIM_THRESHOLD_": "65536"}
