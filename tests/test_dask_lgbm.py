"""LightGBM on a Dask cluster: ``distributed=true`` fits through ``lightgbm.dask`` across two real workers.

On the real slice its WRMSSE is within 2% of the local fit with the same parameters, and the
artifact it saves is the local kind's: it loads and predicts in a process where Dask cannot be imported.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("distributed")

from dask_cluster import Cluster, cluster_env  # noqa: E402
from m5ops.errors import ModelError  # noqa: E402
from m5ops.models.lgbm import LightGBMModel  # noqa: E402
from m5ops.pipeline import lifecycle  # noqa: E402
from m5ops.pipeline.modeling import WorkspaceData, score_models, train_version  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402
from m5ops.stores.registry import Registry  # noqa: E402

# bagging and feature sampling off: their random draws differ per machine in a distributed fit by design
SAME = {"num_boost_round": 200, "train_days": 365, "bagging_freq": 0, "feature_fraction": 1.0}
NO_DASK = """
import sys
sys.modules['dask'] = sys.modules['distributed'] = None  # importing either fails here
from m5ops.models import ForecastModel
from m5ops.pipeline.modeling import WorkspaceData, test_input
model = ForecastModel.load(sys.argv[1])
print(model.kind, len(model.predict(test_input(WorkspaceData.open(sys.argv[2])))))
"""


def test_distributed_is_a_validated_parameter_and_needs_a_cluster(monkeypatch):
    monkeypatch.delenv("M5OPS_DASK_SCHEDULER", raising=False)
    model = LightGBMModel(distributed="true")
    assert model.distributed is True and model.fit_inputs == "feature_store"
    assert LightGBMModel().fit_inputs == "features"
    with pytest.raises(ModelError, match="--executor dask --scheduler"):
        from m5ops.models.lgbm_dask import cluster_client
        cluster_client()


@pytest.mark.slow
@pytest.mark.real_data
def test_distributed_fit_is_within_2_percent_of_the_local_one_and_loads_without_dask(real_workspace, tmp_path,
                                                                                      monkeypatch):
    cluster = Cluster(tmp_path, cluster_env(dict(os.environ)), workers=2)
    try:
        monkeypatch.setenv("M5OPS_DASK_SCHEDULER", cluster.address)
        workspace = Workspace(real_workspace)
        for name, distributed in (("local", False), ("cluster", True)):
            lifecycle.create_model(workspace, name, "lightgbm", {**SAME, "distributed": distributed}, active=False)
            train_version(WorkspaceData.open(real_workspace), name, force=True)
    finally:
        cluster.close()
    scores = score_models(WorkspaceData.open(real_workspace), ["local", "cluster"]).set_index("model")["wrmsse"]
    assert abs(scores["cluster"] - scores["local"]) / scores["local"] <= 0.02, scores.to_dict()

    artifact = real_workspace / Registry(workspace.registry_path).get("cluster")["versions"][0]["artifact"]
    assert sorted(p.name for p in artifact.iterdir()) == sorted(
        p.name for p in (real_workspace / Registry(workspace.registry_path).get("local")["versions"][0]["artifact"]).iterdir())
    done = subprocess.run([sys.executable, "-c", NO_DASK, str(artifact), str(real_workspace)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "lightgbm" and int(done.stdout.split()[1]) > 0
