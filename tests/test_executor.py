"""The executor and notebook runs: parameters checked before injection, failures kept with their notebook."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from m5ops.errors import ParameterError
from m5ops.orchestration import executor
from m5ops.orchestration.jobs import run_task
from m5ops.stores.runs import RunStore
from m5ops.stores.layout import Workspace

NOTEBOOKS = executor.NOTEBOOKS_DIR


@pytest.mark.parametrize("task, params, words", [
    ("train", {"home": "w", "run_id": "r", "model": "../etc"}, "not a slug"),
    ("train", {"home": "w", "run_id": "r", "model": 3}, "must be str"),
    ("train", {"home": "w", "run_id": "r", "model": "a", "manual": "yes"}, "must be bool"),
    ("evaluate", {"home": "w", "run_id": "r", "models": ["ok", "Not Ok"]}, "not a slug"),
    ("simulate_day", {"home": "w", "run_id": "r", "speed": 2}, "no parameter 'speed'"),
    ("deploy", {}, "unknown task 'deploy'"),
])
def test_parameters_are_validated_before_any_notebook_runs(tmp_path, task, params, words):
    with pytest.raises(ParameterError, match=words):
        executor.execute(task, params, tmp_path / "out.ipynb")
    assert not (tmp_path / "out.ipynb").exists()


def test_every_task_notebook_has_a_parameters_cell_naming_its_parameters():
    for spec in executor.TASKS.values():
        nb = nbformat.read(NOTEBOOKS / spec.notebook, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, spec.notebook
        for name in spec.params:
            assert f"{name} =" in tagged[0].source, (spec.notebook, name)


def test_a_failing_notebook_is_recorded_with_its_executed_notebook(real_workspace):
    workspace = Workspace(real_workspace)
    (real_workspace / "models").mkdir(exist_ok=True)
    run = run_task(workspace, "train", {"model": "no-such-model"})
    assert run["status"] == "failed" and "no-such-model" in run["error"]
    executed = nbformat.read(run["output"], as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and "RegistryError" in errors[0]["ename"]
    assert RunStore(workspace.runs_path).get(run["id"])["status"] == "failed"


def test_the_explore_notebook_runs_against_a_workspace(real_workspace, tmp_path):
    env = {**os.environ, "M5OPS_HOME": str(real_workspace)}
    out = tmp_path / "explore.ipynb"
    subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / "explore.ipynb"), str(out), "--cwd",
                    str(NOTEBOOKS), "--log-level", "ERROR"], env=env, check=True, timeout=300, capture_output=True)
    executed = nbformat.read(out, as_version=4)
    assert not [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]


def test_the_output_notebook_is_written_at_each_cells_end_not_at_its_start(tmp_path, monkeypatch):
    # the last cell reads the output notebook as it is on disk while that cell runs
    source = tmp_path / "saves.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell('home = ""\nrun_id = ""', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('first cell ran')"),
                nbformat.v4.new_markdown_cell("a markdown cell: nothing of its own to write"),
                nbformat.v4.new_code_cell("import json\non_disk = json.load(open(home))\n"
                                          "print(json.dumps([c['metadata']['papermill']['status'] for c in on_disk['cells']]))")]
    nbformat.write(nb, source)
    monkeypatch.setitem(executor.TASKS, "saves", executor.TaskSpec("saves", str(source), {"home": (str,), "run_id": (str,)}))
    output = tmp_path / "out.ipynb"
    result = executor.execute("saves", {"home": str(output), "run_id": "r"}, output)
    assert result.status == "succeeded", result.error
    executed = nbformat.read(output, as_version=4)
    seen = json.loads(executed.cells[-1].outputs[0]["text"])
    # parameters, injected parameters, the first cell: written as each ended; the markdown cell's end
    # was not written by itself (it would have been with a code cell after it), nor this one's start
    assert seen == ["completed", "completed", "completed", "pending", "pending"]
    assert "first cell ran" in executed.cells[2].outputs[0]["text"]
    assert [c.metadata.papermill["status"] for c in executed.cells] == ["completed"] * 5  # the final write


def test_the_process_that_forks_runs_compiles_nbformats_validator_once_for_them():
    # a forked run that compiled it itself paid ~0.1 s every time and threw the result away
    code = ("import nbformat.validator as v\nfrom m5ops.orchestration import executor\n"
            "before = len(v.validators)\nexecutor.compile_notebook_validator()\nprint(before, len(v.validators))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    before, after = map(int, out.stdout.split())
    assert before == 0 and after >= 1
