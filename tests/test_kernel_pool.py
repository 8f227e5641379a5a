"""The warm-kernel pool: a run never gets a used kernel, dead spares are replaced, timeouts and exits kill kernels.

Real kernels, real forked runs through the executor, a real runner process; pids are checked
with psutil.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import nbformat
import psutil
import pytest

from m5ops.orchestration import engine, executor
from m5ops.orchestration.kernel_pool import QUIET_S, KernelPool
from m5ops.orchestration.lock import TOKEN_ENV
from m5ops.orchestration.runner import warm_spares
from m5ops.pipeline.workspace_init import InitOptions, init_workspace
from m5ops.stores.registry import Registry, empty_registry

REPO = Path(__file__).resolve().parents[1]
# what a run finds in its kernel, and what it leaves there for a next run that must never see it
PROBE = """import json, os, sys
seen = {"pid": os.getpid(), "preloaded": "m5ops.pipeline.tasks" in sys.modules,
        "left_by_a_run": "left_by_a_run" in globals(), "nice": os.nice(0)}
print(json.dumps(seen))
left_by_a_run = run_id"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids, timeout_s: float = 10.0) -> bool:
    """Whether every pid is gone (or a zombie), waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def task(tmp_path, monkeypatch):
    """Register a task notebook made of ``cells`` (after its parameters cell); returns its name."""
    def make(name: str, *cells: str) -> str:
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                               "display_name": "Python 3"}})
        nb.cells = [nbformat.v4.new_code_cell('home = ""\nrun_id = ""', metadata={"tags": ["parameters"]}),
                    *(nbformat.v4.new_code_cell(source) for source in cells)]
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, path)
        monkeypatch.setitem(executor.TASKS, name, executor.TaskSpec(name, str(path), {"home": (str,), "run_id": (str,)}))
        return name
    return make


def probe(execution) -> dict:
    """What the PROBE cell printed in an executed notebook."""
    assert execution.status == "succeeded", execution.error
    cell = nbformat.read(execution.output, as_version=4).cells[-1]
    return json.loads("".join(o["text"] for o in cell.outputs if o.output_type == "stream"))


def test_a_run_never_gets_a_used_kernel(task, tmp_path):
    name = task("probe", PROBE)
    with executor.warm_kernels(1, niceness=3) as pool:
        assert pool.wait_full(120)
        spare = pool.pids()[0]
        first = probe(executor.execute(name, {"home": "", "run_id": "first"}, tmp_path / "1.ipynb"))
        assert gone([spare])  # used once, then discarded
        assert pool.wait_full(120)
        second = probe(executor.execute(name, {"home": "", "run_id": "second"}, tmp_path / "2.ipynb"))
    assert first["pid"] == spare and second["pid"] != first["pid"]
    assert first["preloaded"] and second["preloaded"]  # warm: m5ops imported before the run
    assert not first["left_by_a_run"] and not second["left_by_a_run"]  # fresh: no run's code ran there
    assert first["nice"] == second["nice"] == min(19, os.nice(0) + 3)
    executed = nbformat.read(tmp_path / "2.ipynb", as_version=4)
    assert [c.execution_count for c in executed.cells if c.cell_type == "code"] == [1, 2, 3]  # the preload counts none


def test_without_a_pool_a_run_starts_its_own_kernel(task, tmp_path):
    seen = probe(executor.execute(task("probe", PROBE), {"home": "", "run_id": "plain"}, tmp_path / "p.ipynb"))
    assert not seen["preloaded"] and not seen["left_by_a_run"] and not alive(seen["pid"])


def test_a_dead_spare_is_replaced_never_handed_out():
    with KernelPool(1) as pool:
        assert pool.wait_full(120)
        dead = pool.pids()[0]
        os.kill(dead, signal.SIGKILL)
        assert gone([dead])  # died (a zombie until the pool reaps it) before a run comes
        kernel = pool.take(timeout_s=120)
        try:
            assert kernel is not None and kernel.pid != dead and kernel.alive()
            assert pool.replaced == 1 and not psutil.pid_exists(dead)  # reaped
        finally:
            kernel.discard()
        assert pool.wait_full(120) and dead not in pool.pids()


def test_while_a_run_executes_with_a_spare_in_stock_the_pool_warms_nothing_and_refills_once_it_ends():
    with KernelPool(2) as pool:
        assert pool.wait_full(120)
        kernel = pool.take()
        try:
            time.sleep(3)  # a kernel would be well on its way by now
            assert len(pool.pids()) == 1 and pool.ready_count() == 1  # the spare, nothing warming beside the run
            second = pool.take()  # the stock is empty now: the next run's kernel warms at once
            try:
                deadline = time.monotonic() + 10
                while len(pool.pids()) < 1 and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert len(pool.pids()) == 1 and pool.ready_count() == 0  # starting, not ready yet
            finally:
                second.discard()
        finally:
            kernel.discard()
        assert pool.wait_full(120) and len(pool.pids()) == 2


def test_runs_back_to_back_find_no_kernel_warming_beside_them_and_the_pool_refills_after_a_pause():
    with KernelPool(3) as pool:
        assert pool.wait_full(120)
        for left in (2, 1):  # a tick's notebooks: each run's kernel discarded, the next taken at once
            pool.take().discard()
            time.sleep(QUIET_S / 2)
            assert len(pool.pids()) == pool.ready_count() == left  # nothing started between the runs
        deadline = time.monotonic() + QUIET_S + 5
        while len(pool.pids()) == 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(pool.pids()) == 2 and pool.ready_count() == 1  # once the pause is over, one warms
        assert pool.wait_full(120) and len(pool.pids()) == 3


def test_a_kernel_discarded_off_the_runs_path_dies_and_is_reaped():
    pool = KernelPool(1).start()
    try:
        assert pool.wait_full(120)
        kernel = pool.take()
        assert kernel.discard_soon() == [kernel.pid] and gone([kernel.pid])
    finally:
        pool.shutdown()
    assert not psutil.pid_exists(kernel.pid)  # reaped too: not even a zombie is left


def test_a_timeout_kills_the_warm_kernel_it_used_and_keeps_the_notebook(task, tmp_path):
    pid_file = tmp_path / "kernel.pid"
    name = task("hangs", f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\nprint('before the hang')",
                "import time\ntime.sleep(600)")
    with executor.warm_kernels(1) as pool:
        assert pool.wait_full(120)
        spare = pool.pids()[0]
        result = executor.execute(name, {"home": "", "run_id": "hangs"}, tmp_path / "h.ipynb", timeout_s=8)
        assert result.status == "failed" and "timed out after 8 s" in result.error
        assert int(pid_file.read_text()) == spare and gone([spare])
    executed = nbformat.read(tmp_path / "h.ipynb", as_version=4)
    assert "before the hang" in json.dumps(executed.cells[2].outputs)  # the cells that ran are kept
    assert "timed out" in executed.cells[-1].source


def test_killing_a_run_kills_its_warm_kernel(task, tmp_path):
    pid_file = tmp_path / "kernel.pid"
    name = task("hangs", f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)")
    with executor.warm_kernels(1) as pool:
        assert pool.wait_full(120)
        done = {}
        thread = threading.Thread(target=lambda: done.update(r=executor.execute(
            name, {"home": "", "run_id": "killed"}, tmp_path / "k.ipynb", timeout_s=300)))
        thread.start()
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        kernel = int(pid_file.read_text())
        killed = executor.kill_run("killed")
        thread.join(60)
    assert kernel in killed and gone([kernel]) and done["r"].status == "failed"


def test_spare_kernels_die_with_a_sigkilled_pool_process(tmp_path):
    script = ("import sys; from m5ops.orchestration.kernel_pool import KernelPool\n"
              "pool = KernelPool(2).start(); pool.wait_full(300); print(*pool.pids(), flush=True)\n"
              "sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        kernels = [int(pid) for pid in holder.stdout.readline().split()]
        assert len(kernels) == 2 and all(alive(pid) for pid in kernels)
        holder.kill()
        holder.wait(10)
        assert gone(kernels, 3.0)  # by the parent-death signal armed before exec, or else ipykernel's poller
    finally:
        holder.kill()


def test_the_engine_is_registered_by_its_entry_point_name():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["papermill.engine"]
    module, _, attribute = declared[engine.ENGINE_NAME].partition(":")
    __import__(module)
    from papermill.engines import papermill_engines

    assert getattr(sys.modules[module], attribute) is engine.WarmKernelEngine
    assert papermill_engines.get_engine(engine.ENGINE_NAME) is engine.WarmKernelEngine


@pytest.mark.parametrize("module", ["m5ops.orchestration.engine", "m5ops.orchestration.engine.warm",
                                    "m5ops.orchestration.executor", "papermill"])
def test_any_import_order_loads_the_engine_through_its_entry_point(module):
    # papermill loads its entry points while it is imported: the engine's module must never be half-made then
    done = subprocess.run([sys.executable, "-c", f"import {module}; from papermill.engines import papermill_engines; "
                           f"print(papermill_engines.get_engine({engine.ENGINE_NAME!r}).__name__)"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "WarmKernelEngine", done.stderr


@pytest.mark.slow
def test_the_runner_shuts_its_spare_kernels_down_on_exit(tmp_path):
    home = tmp_path / "ws"
    init_workspace(home, InitOptions(items=1, days=200, subset={"stores": ["CA_1"]}, progress=False))
    Registry(home / "registry.json").path.write_text(json.dumps(empty_registry()))
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    runner = subprocess.Popen([sys.executable, str(REPO / "runner" / "run_runner.py"), "--home", str(home),
                               "--at", time.strftime("%H:%M", time.localtime(time.time() - 3600))],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        kernels: list[int] = []
        while time.monotonic() < deadline and len(kernels) < warm_spares(2):
            time.sleep(0.5)
            kernels = [p.pid for p in psutil.Process(runner.pid).children()
                       if "ipykernel_launcher" in " ".join(p.cmdline())]
        assert len(kernels) == warm_spares(2) == 4, kernels
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(60) == 0
        assert gone(kernels, 5.0), [pid for pid in kernels if alive(pid)]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
