"""``pip install .`` (not editable) into a fresh venv gives a working m5ops: its notebooks ship inside.

The wheel is built from a copy of the checkout, installed into a new virtual environment from the
package index (no checkout on its path), and used as a user would from another folder: init, a
tick through Papermill, and the dashboard served by Voila.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

import browser as B

REPO = Path(__file__).resolve().parents[1]
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "workspace", "outputs",
                                  "test-artifacts", "__pycache__", ".pytest_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh venv holding m5ops installed from its wheel."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=LEFT_OUT, symlinks=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(root / "dist")], root)
    (wheel,) = (root / "dist").glob("m5ops-*.whl")
    run([sys.executable, "-m", "venv", str(root / "venv")], root)
    run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], root, timeout=900)
    return root / "venv" / "bin"


def run(command: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``command``; fail with its output if it does not succeed."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def clean_env() -> dict:
    """The environment without anything that would point Python at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "M5OPS_HOME", "M5OPS_OUTPUTS",
                                                              "VIRTUAL_ENV")}


@pytest.mark.slow
def test_the_installed_wheel_initialises_ticks_through_papermill_and_serves_the_dashboard(installed, tmp_path):
    env, home = clean_env(), tmp_path / "ws"
    where = run([str(installed / "python"), "-c", "import m5ops, m5ops.notebooks as n; print(m5ops.__file__);"
                 " print(n.NOTEBOOKS_DIR)"], tmp_path, env=env).stdout.split()
    assert all("site-packages" in path for path in where), where  # the wheel's copy, not the checkout
    m5ops = [str(installed / "m5ops"), "--home", str(home)]
    run([*m5ops, "init", "--items", "1", "--days", "300", "--stores", "CA_1"], tmp_path, env=env)
    run([*m5ops, "pause", "hist-gb"], tmp_path, env=env)
    run([*m5ops, "tick"], tmp_path, env=env, timeout=600)
    runs = json.loads(run([*m5ops, "runs", "--json"], tmp_path, env=env).stdout)
    assert {r["task"] for r in runs} >= {"simulate_day", "evaluate", "train"}
    assert all(r["status"] == "succeeded" and Path(r["output"]).is_file() for r in runs), runs

    port = B.free_port()
    with open(tmp_path / "dashboard.log", "wb") as log:
        server = subprocess.Popen([*m5ops, "dashboard", "--port", str(port)], cwd=tmp_path, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        B.wait_for_port(port, server)
        spawned = psutil.Process(server.pid).children(recursive=True)  # Voila and its kernels
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as response:
            page = response.read().decode()
        assert response.status == 200 and "voila" in page.lower(), page[:500]
    finally:
        B.stop_process(server)
    assert server.poll() is not None
    assert not [p.pid for p in spawned if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_on_the_notebooks_even_as_root(tmp_path):
    port = B.free_port()
    with open(tmp_path / "lab.log", "wb") as log:
        lab = subprocess.Popen(["make", "-s", "lab", f"LAB_PORT={port}", f"HOME_DIR={tmp_path / 'ws'}"], cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        B.wait_for_port(port, lab, timeout_s=120)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=30) as response:
            assert response.status == 200 and "version" in json.loads(response.read())
    finally:
        tree = psutil.Process(lab.pid).children(recursive=True)
        os.killpg(lab.pid, 15)
        lab.wait(30)
        psutil.wait_procs(tree, timeout=15)
    assert not [p.pid for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], \
        (tmp_path / "lab.log").read_text()
