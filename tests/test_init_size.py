"""``m5ops init --size``, refused sizes, and baselines that train on sales alone (issue 12, section 3)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from m5ops.cli.main import _parser
from m5ops.cli.workspace_commands import init_options
from m5ops.data import synthetic
from m5ops.data.feature_store import FeatureStore
from m5ops.errors import DataError, ModelError, ParameterError
from m5ops.models import ForecastModel, get_kind
from m5ops.models.baselines import MovingAverageModel
from m5ops.pipeline import modeling  # not its test_input by name: pytest would collect it
from m5ops.pipeline.modeling import WorkspaceData, in_sample_fit, on_sale, train_version, training_frame
from m5ops.pipeline.workspace_init import InitOptions, check_options, init_workspace, synthetic_arguments
from m5ops.stores.registry import Registry

M5OPS = [sys.executable, "-m", "m5ops.cli"]
BASELINES = ["seasonal-naive", "moving-average"]


def m5ops(home, *args):
    return subprocess.run([*M5OPS, "--home", str(home), *args], capture_output=True, text=True, timeout=600)


def planned_shape(argv: list[str]) -> tuple[int, int]:
    """(series, days) a command line's init would generate, computed from its arguments only."""
    options = init_options(_parser().parse_args(["init", *argv]))
    check_options(options)
    arguments = synthetic_arguments(options)
    arguments.pop("seed")
    return synthetic.shape(**arguments)


@pytest.fixture(scope="module")
def small_template(tmp_path_factory):
    """7 synthetic series (one item per department, one store), 200 days, built once."""
    home = tmp_path_factory.mktemp("small") / "ws"
    init_workspace(home, InitOptions(items=1, days=200, subset={"stores": ["CA_1"]}, progress=False))
    return home


@pytest.fixture
def small_workspace(small_template, tmp_path):
    home = tmp_path / "ws"
    shutil.copytree(small_template, home)
    return home


# --- --size ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, expected", [
    (["--size", "full"], (30490, 1941)),              # the synthetic generator's whole M5 shape
    ([], (210, 1941)),                                 # demo is the default
    (["--size", "demo"], (210, 1941)),
    (["--size", "full", "--days", "400"], (30490, 400)),                 # --days narrows a size
    (["--size", "full", "--stores", "CA_1", "TX_2"], (2 * 3049, 1941)),  # --stores narrows it too
    (["--items", "5"], (5 * 7 * 10, 1941)),            # custom: items per department, every store
])
def test_size_resolves_to_its_shape_without_generating(argv, expected):
    assert planned_shape(argv) == expected


@pytest.mark.parametrize("kwargs", [
    {"n_items_per_dept": 1, "n_days": 30},
    {"n_series": 25, "n_days": 10},
    {"n_items_per_dept": 2, "n_days": 15, "stores": ["WI_3", "CA_2"]},
])
def test_shape_is_what_generate_makes(kwargs):
    data = synthetic.generate(**kwargs)
    assert synthetic.shape(**kwargs) == (data.n_series, data.sales.shape[1])


def test_size_demo_creates_210_series(tmp_path):
    result = m5ops(tmp_path / "ws", "init", "--size", "demo", "--days", "200")
    assert result.returncode == 0, result.stderr
    assert "210 series" in result.stdout
    status = m5ops(tmp_path / "ws", "status", "--json")
    assert '"series": 210' in status.stdout


@pytest.mark.parametrize("argv, words", [
    (["--items", "0"], "--items 0: pass a whole number >= 1"),
    (["--items", "-3"], "--items -3: pass a whole number >= 1"),
    (["--days", "0"], "--days 0: pass a whole number >= 1"),
    (["--size", "full", "--items", "4"], "pass one"),
    (["--size", "demo", "--source", "m5", "--m5-dir", "."], "--size is for synthetic data"),
    (["--states", "CA"], "takes --stores"),
])
def test_refused_size_exits_2_with_one_line_and_writes_nothing(tmp_path, argv, words):
    result = m5ops(tmp_path / "ws", "init", *argv)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []  # no workspace, no staging folder


def test_unknown_size_is_refused_through_the_api(tmp_path):
    with pytest.raises(ParameterError, match="demo, full"):
        init_workspace(tmp_path / "ws", InitOptions(size="huge"))
    assert list(tmp_path.iterdir()) == []


def test_config_records_the_size(tmp_path):
    from m5ops.stores.layout import Workspace

    init_workspace(tmp_path / "ws", InitOptions(size="demo", days=200, subset={"stores": ["WI_1"]}, progress=False))
    subset = Workspace(tmp_path / "ws").config().subset
    assert subset["size"] == "demo" and subset["days"] == 200 and subset["stores"] == ["WI_1"]


# --- baselines train on sales alone -----------------------------------------------------------

def test_baseline_training_reads_no_features(small_workspace):
    # only the test window's features stay: the gate scores the new version there, as every kind's
    features = FeatureStore(small_workspace / "features")
    test_start = WorkspaceData.open(small_workspace).split.test_start
    for day in [d for d in features.stored_days() if d < test_start]:
        features.remove_day(day)
    for name in BASELINES:  # through the CLI and the train notebook, as a user runs it
        result = m5ops(small_workspace, "train", name)
        assert result.returncode == 0, result.stderr
    data = WorkspaceData.open(small_workspace)
    with pytest.raises(DataError, match="not built"):  # the training window's features really are gone
        train_version(data, "lightgbm")
    registry = Registry(data.workspace.registry_path)
    naive, average = (registry.current(name) for name in BASELINES)
    cutoff = data.split.train_end
    # the sales they look at, and no more: the last week, the last `window` days
    assert naive["cutoff_day"] == cutoff and naive["metrics"]["train_days"] == 7
    assert naive["rows"] <= 7 * len(data.series)
    assert average["metrics"]["train_days"] == MovingAverageModel().window


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_versions_forecast_as_trained_the_old_way(small_workspace, name):
    data = WorkspaceData.open(small_workspace)
    trained = train_version(data, name)
    kind = Registry(data.workspace.registry_path).get(name)
    start, end = data.split.train_range()  # the old way: the features of every training day
    old = get_kind(kind["kind"])(**kind["params"]).fit(on_sale(data.features.read(start, end, data.series)))
    inp = modeling.test_input(data)
    loaded = ForecastModel.load(data.workspace.home / trained.record["artifact"])
    np.testing.assert_array_equal(loaded.predict(inp), old.predict(inp))
    fitted = in_sample_fit(data, loaded, end)
    np.testing.assert_array_equal(fitted["fitted"].to_numpy(), in_sample_fit(data, old, end)["fitted"].to_numpy())


def test_sales_frame_matches_the_feature_rows(small_workspace):
    data = WorkspaceData.open(small_workspace)
    naive = get_kind("seasonal_naive")()
    sales = training_frame(data, naive, 120, 144)
    features = data.features.read(120, 144, data.series)
    for column in ("series", "day", "sales", "sell_price"):
        np.testing.assert_array_equal(sales[column].to_numpy(), features[column].to_numpy())


def test_unknown_fit_inputs_are_refused_naming_the_kind(small_workspace):
    class Odd(MovingAverageModel):
        kind = "odd"
        fit_inputs = "weather"

    with pytest.raises(ModelError, match="'odd'.*'weather'"):
        training_frame(WorkspaceData.open(small_workspace), Odd(), 150, 160)
