"""Training time and peak memory of the default ``lightgbm`` kind at the full M5 shape.

    flock /tmp/m5ops-bigmem.lock .venv/bin/python bench/bench_training.py   # 30,490 x 1,941, ~8 min on idle cores, ~3 GiB
    .venv/bin/python bench/bench_training.py --quick                         # 1,000 x 1,941, ~1 min
    .venv/bin/python bench/bench_training.py --param num_boost_round=100     # try other parameters

The data are synthetic (``m5ops.data.synthetic.generate``), days d_1..d_1941 as in a workspace
whose last stored day is d_1941: the test window is d_1914..d_1941 and the model trains on its
default window, the last ``train_days`` days up to d_1913. One child process:

1. builds the training frame the way ``train_version`` sees it, without writing ~1,941 Parquet
   files: ``compute_block`` over the days the window needs (``HISTORY_DAYS`` before it), one
   ``day_frame`` per day, concatenated, ids attached (``attach_ids``), then ``on_sale``;
2. drops the generated data, returns freed heap to the OS (``malloc_trim``), resets its
   peak-RSS counter (``common.reset_peak_rss``) and calls ``model.fit(frame)``, timing every
   boosting round.

"build" and "fit" peaks are VmHWM of the child during each phase; the fit peak includes the
frame the caller still holds (as in ``train_version``), the interpreter and the imports. The
first round's time includes LightGBM's Dataset construction (binning). Targets: fit at most
10 minutes, fit peak at most 8 GiB. Wall times stretch when other processes hold the 2 cores
(the load average is printed). The full run holds /tmp/m5ops-bigmem.lock (not twice when
started under ``flock``).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import os
import sys
import time
from pathlib import Path

from common import (
    bigmem_lock, emit_result, gib, peak_rss_bytes, print_table, reset_peak_rss, rss_bytes, run_child, verdict,
)

M5_SERIES, M5_DAYS = 30_490, 1_941
QUICK_SERIES = 1_000
TARGET_FIT_S = 600.0
TARGET_PEAK_GIB = 8.0


# --- the child ------------------------------------------------------------------------------

def training_frame(data, train_days: int):
    """The rows ``train_version`` would fit on: the last ``train_days`` train days, on sale."""
    import numpy as np
    import pandas as pd

    from m5ops.data.feature_store import SERIES_CHUNK
    from m5ops.data.features import HISTORY_DAYS, attach_ids, calendar_features, compute_block, day_frame
    from m5ops.data.split import Split
    from m5ops.pipeline.modeling import on_sale

    start, end = Split(data.first_day, data.last_day).train_range(train_days)
    first = max(data.first_day, start - HISTORY_DAYS)
    window = data.day_slice(first, end)
    before = data.prices[:, : first - data.first_day]
    price_max = np.fmax.reduce(before, axis=1) if before.shape[1] else None
    chunks = [slice(i, min(i + SERIES_CHUNK, data.n_series)) for i in range(0, data.n_series, SERIES_CHUNK)]
    blocks = [(rows, compute_block(window.sales[rows], window.prices[rows], first, start,
                                   None if price_max is None else price_max[rows])) for rows in chunks]
    calendar = calendar_features(data.calendar.set_index(data.calendar["day"].astype(int), drop=False))
    states = data.series["state_id"]
    days = []
    for j in range(end - start + 1):
        parts = [day_frame(block, j, calendar, states.iloc[rows]) for rows, block in blocks]
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        frame["series"] = np.arange(data.n_series, dtype=np.int32)
        days.append(frame)
    del blocks
    frame = pd.concat(days, ignore_index=True)
    del days
    return on_sale(attach_ids(frame.drop(columns=["price_max"]), data.series))


def _release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so the fit starts from the frame alone."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _round_clock(marks: list[float]):
    """Wrap ``lightgbm.train`` so that every boosting round appends its end time to ``marks``."""
    import lightgbm

    real_train = lightgbm.train

    def record(env) -> None:
        marks.append(time.perf_counter())

    def train(*args, **kwargs):
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), record]
        marks.append(time.perf_counter())
        return real_train(*args, **kwargs)

    lightgbm.train = train


def child_fit(n_series: int | None, n_days: int, seed: int, params: dict) -> None:
    """Generate, build the frame, fit the default lightgbm (with ``params`` over it); emit the figures."""
    from m5ops.data.synthetic import generate
    from m5ops.models import get_kind

    started = time.perf_counter()
    data = generate(n_series=n_series, n_days=n_days, seed=seed)
    generated = time.perf_counter()
    model = get_kind("lightgbm")(**params)
    frame = training_frame(data, model.train_days)
    built = time.perf_counter()
    build_peak, frame_bytes = peak_rss_bytes(), int(frame.memory_usage(deep=True).sum())
    n_series = data.n_series
    del data
    _release_free_memory()
    rss_before_fit, load_before_fit = rss_bytes(), os.getloadavg()
    reset_peak_rss()
    marks: list[float] = []
    _round_clock(marks)
    fit_start = time.perf_counter()
    model.fit(frame)
    fit_end = time.perf_counter()
    rounds = len(marks) - 1
    first_round = marks[1] - marks[0] if rounds else 0.0
    later = (marks[-1] - marks[1]) / (rounds - 1) if rounds > 1 else first_round
    emit_result({
        "series": n_series, "days": n_days, "rows": len(frame), "features": len(model.inputs),
        "params": model.get_params(), "rounds": rounds, "trees": model.booster_.num_trees(),
        "generate_s": generated - started, "build_s": built - generated, "fit_s": fit_end - fit_start,
        "prepare_s": marks[0] - fit_start if marks else 0.0, "first_round_s": first_round, "s_per_round": later,
        "frame_gib": gib(frame_bytes), "rss_before_fit_gib": gib(rss_before_fit),
        "build_peak_gib": gib(build_peak), "fit_peak_gib": gib(peak_rss_bytes()),
        "load_start": load_before_fit, "load_end": os.getloadavg(),
    })


# --- the parent -----------------------------------------------------------------------------

def report(r: dict, overrides: dict) -> bool:
    """Print the figures and the targets; False only if a full-shape run misses a target."""
    p = r["params"]
    what = f"lightgbm with {overrides}" if overrides else "Default lightgbm"
    print_table([{
        "rows": f"{r['rows']:,}", "features": r["features"], "rounds": r["rounds"], "leaves": p["num_leaves"],
        "lr": p["learning_rate"], "train_days": p["train_days"], "threads": p["num_threads"],
    }], title=f"{what}, {r['series']:,} series x {r['days']:,} days (synthetic), trained to d_{r['days'] - 28}")
    print()
    print_table([
        {"step": "generate (synthetic)", "seconds": r["generate_s"], "peak_rss_gib": ""},
        {"step": "training frame (features, ids, on_sale)", "seconds": r["build_s"], "peak_rss_gib": r["build_peak_gib"]},
        {"step": "model.fit: frame checks + to LightGBM", "seconds": r["prepare_s"], "peak_rss_gib": ""},
        {"step": "model.fit: round 1 (incl. Dataset binning)", "seconds": r["first_round_s"], "peak_rss_gib": ""},
        {"step": f"model.fit: rounds 2..{r['rounds']}, per round", "seconds": r["s_per_round"], "peak_rss_gib": ""},
        {"step": "model.fit, wall", "seconds": r["fit_s"], "peak_rss_gib": r["fit_peak_gib"]},
    ], title="Time and peak memory (peak: VmHWM of the child during the step)")
    print(f"\ntraining frame in memory: {r['frame_gib']:.2f} GiB; child RSS when fit starts (data freed, frame kept): "
          f"{r['rss_before_fit_gib']:.2f} GiB; the fit adds {r['fit_peak_gib'] - r['rss_before_fit_gib']:.2f} GiB at its peak")
    load = " -> ".join(" ".join(f"{x:.1f}" for x in r[k]) for k in ("load_start", "load_end"))
    print(f"load average (1, 5, 15 min) at the fit's start -> end: {load}, on {os.cpu_count()} cores "
          "(the fit takes about twice as long while another process keeps a core busy)")
    time_ok, mem_ok = r["fit_s"] <= TARGET_FIT_S, r["fit_peak_gib"] <= TARGET_PEAK_GIB
    full = r["series"] == M5_SERIES and r["days"] == M5_DAYS
    print(f"fit time: {r['fit_s'] / 60:.1f} min  ({_judged(time_ok, f'{TARGET_FIT_S / 60:.0f} min', full)})")
    print(f"fit peak RSS: {r['fit_peak_gib']:.2f} GiB  ({_judged(mem_ok, f'{TARGET_PEAK_GIB:.0f} GiB', full)})")
    return (time_ok and mem_ok) or not full


def _judged(ok: bool, target: str, full: bool) -> str:
    """The verdict on a target; targets are for the full M5 shape only."""
    return f"target <= {target}: {verdict(ok)}" if full else "not the full shape: target not judged"


def _params(pairs: list[str]) -> dict:
    """``name=value`` strings as a dict (the kind's schema converts and checks the values)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param {pair!r}: use name=value, e.g. --param num_boost_round=300")
        out[name.strip()] = value.strip()
    return out


def main() -> int:
    """Parse the arguments; run the child's job, or the benchmark (full shape under the big-memory lock)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SERIES:,} series instead of {M5_SERIES:,}")
    parser.add_argument("--series", type=int, default=None, help="number of series (default: the full M5 shape)")
    parser.add_argument("--days", type=int, default=M5_DAYS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a lightgbm parameter over its default (repeatable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n_series = args.series or (QUICK_SERIES if args.quick else None)
    if args.child:
        child_fit(n_series, args.days, args.seed, _params(args.param))
        return 0
    argv = [str(Path(__file__).resolve()), "--child", "--days", str(args.days), "--seed", str(args.seed),
            *(["--series", str(n_series)] if n_series else []), *[f"--param={p}" for p in args.param]]
    small = n_series is not None and n_series <= 3_000
    with contextlib.nullcontext() if small else bigmem_lock():
        result = run_child(argv)
    return 0 if report(result, _params(args.param)) else 1


if __name__ == "__main__":
    sys.exit(main())
