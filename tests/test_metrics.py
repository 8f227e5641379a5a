"""Point metrics against hand-computed values and scikit-learn, their refusals, and evaluate_forecast."""
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_tweedie_deviance, root_mean_squared_error

from m5ops.errors import DataError, ParameterError
from m5ops.evaluation.metrics import (
    METRICS, TWEEDIE_EPS, WRMSSE, evaluate_forecast, mae, rmse, tweedie_deviance, wmape,
)


def _tweedie15(y, mu):
    """Tweedie deviance at power 1.5 for one cell, written out."""
    return 2 * (y ** 0.5 / (-0.5 * 0.5) - y * mu ** -0.5 / -0.5 + mu ** 0.5 / 0.5)


@pytest.mark.parametrize("metric, y_true, y_pred, expected", [
    (mae, [1, 2, 3], [2, 2, 5], 1.0),
    (mae, [[0, 4], [2, 0]], [[1, 2], [2, 1]], 1.0),
    (mae, [5], [5], 0.0),
    (rmse, [1, 2, 3], [2, 2, 5], math.sqrt(5 / 3)),
    (rmse, [[0, 4], [2, 0]], [[1, 2], [2, 1]], math.sqrt(6 / 4)),
    (rmse, [0, 0], [3, 4], math.sqrt(25 / 2)),
    (wmape, [1, 2, 3], [2, 2, 5], 3 / 6),
    (wmape, [[0, 4], [2, 0]], [[1, 2], [2, 1]], 4 / 6),
    (wmape, [0, 10], [5, 10], 0.5),
    (tweedie_deviance, [0, 1, 4], [1, 1, 4], 4 / 3),
    (tweedie_deviance, [1], [4], 2.0),
    (tweedie_deviance, [4], [1], 4.0),
])
def test_metric_matches_hand_computed_value(metric, y_true, y_pred, expected):
    assert metric(y_true, y_pred) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("y_pred", [[0.0, 0.0], [1.0, 3.0]])
def test_wmape_is_nan_when_every_actual_is_zero(y_pred):
    assert math.isnan(wmape([0, 0], y_pred))


def test_tweedie_floors_zero_predictions_at_eps():
    expected = (_tweedie15(0, TWEEDIE_EPS) + _tweedie15(2, TWEEDIE_EPS)) / 2
    assert tweedie_deviance([0, 2], [0.0, -1.0]) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(expected)


def test_tweedie_leaves_predictions_above_eps_untouched():
    assert tweedie_deviance([3], [2 * TWEEDIE_EPS]) == pytest.approx(_tweedie15(3, 2 * TWEEDIE_EPS))


@pytest.mark.parametrize("seed, shape", [(0, (50,)), (1, (30, 28)), (2, (7, 3))])
def test_mae_and_rmse_agree_with_scikit_learn(seed, shape):
    rng = np.random.default_rng(seed)
    y_true = rng.poisson(2.0, size=shape).astype(float)
    y_pred = rng.gamma(2.0, 1.0, size=shape)
    flat_true, flat_pred = y_true.ravel(), y_pred.ravel()
    assert mae(y_true, y_pred) == pytest.approx(mean_absolute_error(flat_true, flat_pred), rel=1e-12)
    assert rmse(y_true, y_pred) == pytest.approx(root_mean_squared_error(flat_true, flat_pred), rel=1e-12)


@pytest.mark.parametrize("seed, power", [(0, 1.5), (1, 1.1), (2, 1.9), (3, 1.5)])
def test_tweedie_agrees_with_scikit_learn(seed, power):
    rng = np.random.default_rng(seed)
    y_true = rng.poisson(1.5, size=(40, 28)).astype(float)
    y_pred = rng.gamma(2.0, 1.0, size=(40, 28)) + TWEEDIE_EPS  # above the floor: no clipping
    expected = mean_tweedie_deviance(y_true.ravel(), y_pred.ravel(), power=power)
    assert tweedie_deviance(y_true, y_pred, power=power) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("metric", [mae, rmse, wmape, tweedie_deviance])
@pytest.mark.parametrize("y_true, y_pred, words", [
    ([1, 2, 3], [1, 2], ["shape", "must match"]),
    ([[1, 2]], [1, 2], ["shape"]),
    ([1, 2], [1, np.nan], ["y_pred", "NaN"]),
    ([np.nan, 2], [1, 2], ["y_true", "NaN"]),
    ([1, np.inf], [1, 2], ["y_true", "inf"]),
    ([], [], ["empty"]),
    (["a", "b"], [1, 2], ["y_true", "not numeric"]),
])
def test_metric_refuses_bad_input_naming_the_problem(metric, y_true, y_pred, words):
    with pytest.raises(DataError) as caught:
        metric(y_true, y_pred)
    for word in words:
        assert word in str(caught.value)


def test_tweedie_refuses_negative_actuals():
    with pytest.raises(DataError, match="negative"):
        tweedie_deviance([1, -1], [1, 1])


@pytest.mark.parametrize("power", [1.0, 2.0, 0.0, 3.0])
def test_tweedie_refuses_power_outside_one_to_two(power):
    with pytest.raises(ParameterError, match="between 1 and 2"):
        tweedie_deviance([1], [1], power=power)


def test_metrics_accept_pandas_objects():
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    assert mae(frame, frame + 1) == 1.0


def test_evaluate_forecast_without_wrmsse_gives_the_four_point_metrics():
    y_true, y_pred = np.array([[1, 2], [3, 0]]), np.array([[1, 1], [2, 1]])
    scores = evaluate_forecast(y_true, y_pred, wrmsse=None)
    assert tuple(scores) == METRICS[:4]
    assert scores["mae"] == mae(y_true, y_pred)
    assert scores["wmape"] == wmape(y_true, y_pred)
    assert scores["rmse"] == rmse(y_true, y_pred)
    assert scores["tweedie"] == tweedie_deviance(y_true, y_pred)
    assert all(isinstance(value, float) for value in scores.values())


def test_evaluate_forecast_with_wrmsse_gives_every_metric():
    series = pd.DataFrame({
        "id": ["FOODS_1_001_CA_1", "FOODS_1_001_TX_1"], "item_id": "FOODS_1_001", "dept_id": "FOODS_1",
        "cat_id": "FOODS", "store_id": ["CA_1", "TX_1"], "state_id": ["CA", "TX"],
    })
    sales = np.array([[1, 0, 2, 3], [0, 2, 2, 1]])
    evaluator = WRMSSE(series, sales, np.ones(sales.shape), weight_days=2)
    y_true, y_pred = np.array([[1, 2], [3, 0]]), np.array([[1, 1], [2, 1]])
    scores = evaluate_forecast(y_true, y_pred, wrmsse=evaluator)
    assert tuple(scores) == METRICS
    assert scores["wrmsse"] == evaluator.score(y_true, y_pred).overall
    assert scores["wrmsse"] > 0
