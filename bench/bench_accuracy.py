"""Accuracy of every default model kind on the real M5 slice, in M5's validation setup.

    .venv/bin/python bench/bench_accuracy.py                # train to d_1913, forecast d_1914..d_1941
    .venv/bin/python bench/bench_accuracy.py --last-day 1913  # a window before the test: d_1886..d_1913
    .venv/bin/python bench/bench_accuracy.py --quick        # 10 items, 400 days, fewer trees: a smoke test
    .venv/bin/python bench/bench_accuracy.py --param lightgbm.num_boost_round=300

The data are the real slice in ``$M5_DATA_DIR`` (default ``<repo>/../shared/data/m5``: 290
series, d_1..d_1941). A workspace is built in a temporary folder with every day up to
``--last-day`` stored, so the split's test window is its last 28 days and training ends the day
before; each default model (``m5ops init`` registers one per kind) is trained with
``train_version`` and scored on that window. WRMSSE uses M5's definition: scales over the whole
training history (``wrmsse_for(data)``, the same the daily monitoring uses), weights from the
last 28 training days' dollar sales. The lightgbm defaults were chosen on ``--last-day 1913``
and ``--last-day 1885``, never on the test window (see bench/README.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from common import print_table, verdict

from m5ops.data.schema import day_label
from m5ops.pipeline.lifecycle import DEFAULT_MODELS, create_model, delete_model
from m5ops.evaluation.metrics import evaluate_forecast
from m5ops.pipeline.modeling import WorkspaceData, actual_matrix, forecast_matrix, test_input, train_version, wrmsse_for
from m5ops.stores.registry import Registry
from m5ops.pipeline.workspace_init import InitOptions, init_workspace

M5_LAST_DAY = 1941
TARGET_RATIO = 0.75
LEARNED, BASELINE = "lightgbm", "seasonal-naive"
QUICK = {"items": 10, "days": 400}
QUICK_PARAMS = {"lightgbm": {"num_boost_round": 100}, "hist-gb": {"max_iter": 50}}


def m5_dir(given: str | None) -> Path:
    """The real M5 slice: --m5-dir, else $M5_DATA_DIR, else <repo>/../shared/data/m5."""
    repo = Path(__file__).resolve().parent.parent
    return Path(given or os.environ.get("M5_DATA_DIR") or repo.parent / "shared" / "data" / "m5")


def build_workspace(home: Path, folder: Path, last_day: int, quick: bool, overrides: dict) -> WorkspaceData:
    """A workspace of the slice with days up to ``last_day`` stored; default models, some re-parameterised."""
    options = InitOptions(source="m5", m5_dir=str(folder), start_day=last_day, progress=False,
                          **(QUICK if quick else {}))
    workspace = init_workspace(home, options)
    for name, params in overrides.items():
        delete_model(workspace, name)
        create_model(workspace, name, DEFAULT_MODELS[name], params)
    return WorkspaceData.open(home)


def score_all(data: WorkspaceData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row of metrics per model, WRMSSE by level with one column per model)."""
    inp = test_input(data)
    n = len(data.series)
    actual = actual_matrix(inp, n)
    full = wrmsse_for(data)
    rows, levels = [], {}
    for name in DEFAULT_MODELS:
        started = time.perf_counter()
        trained = train_version(data, name)
        seconds = time.perf_counter() - started
        predicted = forecast_matrix(trained.model, inp, n)
        rows.append({"model": name, **evaluate_forecast(actual, predicted, wrmsse=full),
                     "train_rows": str(trained.record["rows"]),
                     "train_s": seconds})
        levels[name] = full.score_by_level(actual, predicted)
    table = pd.DataFrame(rows).set_index("model")
    table["vs_snaive"] = table["wrmsse"] / table.loc[BASELINE, "wrmsse"]
    return table, pd.DataFrame(levels)


def report(data: WorkspaceData, table: pd.DataFrame, levels: pd.DataFrame, full: bool = True) -> bool:
    """Print both tables and the target line; False only if the full test run misses the target."""
    split = data.split.describe()
    params = _lightgbm_params(data)
    print(f"Real M5 slice: {len(data.series)} series; train {split['train']}, test {split['test']} "
          f"({split['test_dates']})")
    print(f"lightgbm parameters: {params}")
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores (train_s is wall time, slowed by other load)\n")
    columns = ["wrmsse", "vs_snaive", "mae", "rmse", "wmape", "tweedie", "train_rows", "train_s"]
    print_table([{"model": name, **row} for name, row in table[columns].iterrows()],
                columns=["model", *columns], title=f"Accuracy on {split['test']} (WRMSSE scales: full history)")
    print()
    by_level = levels.copy()
    by_level[f"{LEARNED}/sNaive"] = by_level[LEARNED] / by_level[BASELINE]
    by_level.loc["WRMSSE (mean)"] = [*levels.mean().to_list(), levels[LEARNED].mean() / levels[BASELINE].mean()]
    print_table([{"level": level, **row} for level, row in by_level.iterrows()],
                columns=["level", *by_level.columns], title="WRMSSE by level")
    ratio = float(table.loc[LEARNED, "vs_snaive"])
    judged = f"target <= {TARGET_RATIO}: {verdict(ratio <= TARGET_RATIO)}" if full else "not the test run: target not judged"
    print(f"\nWRMSSE({LEARNED}) / WRMSSE(sNaive) = {ratio:.4f}  ({judged})")
    return ratio <= TARGET_RATIO or not full


def _lightgbm_params(data: WorkspaceData) -> dict:
    """The parameters the lightgbm model was registered with."""
    return Registry(data.workspace.registry_path).get(LEARNED)["params"]


def _overrides(pairs: list[str]) -> dict[str, dict]:
    """``model.name=value`` strings as {model: {name: value}}."""
    out: dict[str, dict] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        model, dot, name = key.strip().partition(".")
        if not (sep and dot and name):
            raise SystemExit(f"--param {pair!r}: use model.name=value, e.g. --param lightgbm.num_boost_round=300")
        if model not in DEFAULT_MODELS:
            raise SystemExit(f"--param {pair!r}: no default model {model!r}; use one of {', '.join(DEFAULT_MODELS)}")
        out.setdefault(model, {})[name] = value.strip()
    return out


def main() -> int:
    """Build the workspace in a temporary folder, train and score every default model, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m5-dir", default=None, help="real M5 folder (default: $M5_DATA_DIR or ../shared/data/m5)")
    parser.add_argument("--last-day", type=int, default=M5_LAST_DAY,
                        help="last stored day: the test window is the 28 days ending here (default 1941)")
    parser.add_argument("--quick", action="store_true",
                        help=f"only {QUICK['items']} items, the last {QUICK['days']} days and fewer trees (a smoke test)")
    parser.add_argument("--param", action="append", default=[], metavar="MODEL.NAME=VALUE",
                        help="a parameter over a default model's defaults (repeatable)")
    parser.add_argument("--dir", default=None, help="folder for the temporary workspace (default: system temp)")
    args = parser.parse_args()
    folder = m5_dir(args.m5_dir)
    if not folder.is_dir():
        raise SystemExit(f"no M5 folder at {folder}; pass --m5-dir or set M5_DATA_DIR")
    tmp = Path(tempfile.mkdtemp(prefix="m5ops-bench-accuracy-", dir=args.dir))
    try:
        started = time.perf_counter()
        overrides = _overrides(args.param)
        if args.quick:
            for name, quick in QUICK_PARAMS.items():
                overrides[name] = {**quick, **overrides.get(name, {})}
        data = build_workspace(tmp / "ws", folder, args.last_day, args.quick, overrides)
        print(f"workspace built in {time.perf_counter() - started:.0f} s (stored up to {day_label(args.last_day)})",
              file=sys.stderr)
        table, levels = score_all(data)
        return 0 if report(data, table, levels, full=not args.quick and args.last_day == M5_LAST_DAY) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
