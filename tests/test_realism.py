"""Simulated days keep what the models learn from real data: on the real slice, they rank the models alike.

The real slice is stored up to d_1913; d_1914..d_1941 arrive once as the real days and once
simulated from the data up to d_1913 only (``bench/bench_realism.py``, which prints the figures).
The four default models, trained up to d_1913, must rank the same on both windows, and each
model's WRMSSE relative to seasonal naive on the simulated window must lie within 10% of its
value on the real one: a simulator whose days drift towards what one model predicts would hand
that model the lead.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_realism  # noqa: E402

SEEDS = [0, 1]


@pytest.fixture(scope="module")
def realism(m5_dir, tmp_path_factory):
    return bench_realism.measure(m5_dir, SEEDS, tmp_path_factory.mktemp("realism"), log=lambda line: None)


@pytest.mark.real_data
@pytest.mark.slow
def test_simulated_days_rank_the_default_models_as_the_real_days_do(realism):
    table = realism.table().round(3).to_string()
    assert realism.same_ranking(), table
    for seed in SEEDS:
        assert realism.same_ranking(seed), f"seed {seed}:\n{realism.simulated[seed]}\n{table}"


@pytest.mark.real_data
@pytest.mark.slow
def test_each_models_wrmsse_relative_to_seasonal_naive_is_kept_within_ten_percent(realism):
    table = realism.table().round(3).to_string()
    for seed in SEEDS:
        assert realism.worst_relative_change(seed) <= bench_realism.RATIO_TOLERANCE, f"seed {seed}:\n{table}"
