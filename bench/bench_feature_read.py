"""Reading a training window from the feature store: ``FeatureStore.read`` beside the per-day concat it replaced.

    flock /tmp/m5ops-bigmem.lock .venv/bin/python bench/bench_feature_read.py   # 30,490 series x 730 days
    .venv/bin/python bench/bench_feature_read.py --days 365
    .venv/bin/python bench/bench_feature_read.py --quick                        # 3,049 series x 365 days

Synthetic data of the full M5 shape (``generate``); ``FeatureStore.build_all`` writes the
features of its last ``--days`` days into a temporary folder, one Parquet file per day, as a
workspace holds them. Each reader then runs in its own child process, alternately, ``--repeat``
times, and reads the whole window as training does:

- ``per-day concat``: the previous ``FeatureStore.read``: a pandas frame per day, ``pd.concat``,
  then dropping ``price_max`` (kept here as the baseline).
- ``read``: the library's ``FeatureStore.read``: every column allocated once for the whole window,
  each day's table copied into its rows and dropped.

Printed: wall time and the child's peak RSS (interpreter and imports included: the ``baseline
RSS`` column is the child's RSS before reading), the frame's own size, and a checksum of every
numeric column so that the two frames are seen to be equal. Target: the peak above the baseline
at most about twice the frame (it was over three times).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bigmem_lock, emit_result, gib, peak_rss_bytes, print_table, rss_bytes, run_child, verdict  # noqa: E402


def old_read(root: Path, start: int, end: int, series):
    """The previous FeatureStore.read, as the baseline."""
    import pandas as pd
    import pyarrow.parquet as pq

    from m5ops.data.features import attach_ids

    paths = [root / f"day={day:06d}.parquet" for day in range(start, end + 1)]
    tables = [pq.read_table(p) for p in paths]
    frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
    return attach_ids(frame.drop(columns=["price_max"], errors="ignore"), series)


def child(folder: Path, which: str, start: int, end: int) -> None:
    import numpy as np
    import pandas as pd

    from m5ops.data.feature_store import FeatureStore

    series = pd.read_parquet(folder / "series.parquet")
    baseline = rss_bytes()
    began = time.perf_counter()
    if which == "read":
        frame = FeatureStore(folder / "features").read(start, end, series)
    else:
        frame = old_read(folder / "features", start, end, series)
    seconds = time.perf_counter() - began
    peak = peak_rss_bytes()  # before the checksum below allocates anything
    numeric = [column for column in frame.columns if pd.api.types.is_numeric_dtype(frame[column].dtype)]
    checksum = sum(float(np.nansum(frame[column].to_numpy(dtype=np.float64))) for column in numeric)
    emit_result({"seconds": seconds, "baseline_rss": baseline, "read_peak_rss": peak,
                 "frame_bytes": int(frame.memory_usage(deep=True).sum()), "rows": len(frame),
                 "columns": frame.shape[1], "checksum": round(checksum, 3)})


def build(folder: Path, n_series: int | None, days: int) -> tuple[int, int]:
    """Features of the last ``days`` days of a synthetic data set; returns (first, last) day."""
    from m5ops.data.feature_store import FeatureStore
    from m5ops.data.schema import M5Dataset
    from m5ops.data.synthetic import generate

    data = generate(n_series=n_series)
    first = data.last_day - days + 1
    window = M5Dataset(data.series, data.calendar, data.sales[:, first - 1:], data.prices[:, first - 1:],
                       first_day=first)
    calendar = data.calendar.set_index(data.calendar["day"].astype(int), drop=False)
    FeatureStore(folder / "features").build_all(window, calendar)
    data.series.to_parquet(folder / "series.parquet")
    return first, data.last_day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--days", type=int)
    parser.add_argument("--series", type=int, help="default: the full M5 shape (30,490)")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--child", nargs=4, metavar=("FOLDER", "WHICH", "START", "END"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, which, start, end = args.child
        child(Path(folder), which, int(start), int(end))
        return
    days = args.days or (365 if args.quick else 730)
    n_series = args.series or (3049 if args.quick else None)
    repeat = args.repeat or (2 if args.quick else 3)
    with bigmem_lock(), tempfile.TemporaryDirectory(prefix="m5ops-bench-read-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        first, last = build(folder, n_series, days)
        print(f"features of days {first}..{last} written in {time.perf_counter() - began:.0f} s", flush=True)
        results: dict[str, list[dict]] = {"per-day concat": [], "read": []}
        for _ in range(repeat):  # alternate, so a noisy moment hits both
            for which, runs in results.items():
                runs.append(run_child([__file__, "--child", str(folder), which.split()[0], str(first), str(last)]))
        shutil.rmtree(folder / "features", ignore_errors=True)
    rows = []
    for which, runs in results.items():
        over = [r["read_peak_rss"] - r["baseline_rss"] for r in runs]
        rows.append({"reader": which, "rows": runs[0]["rows"], "seconds (median)": statistics.median(r["seconds"] for r in runs),
                     "peak RSS GiB": gib(max(r["read_peak_rss"] for r in runs)),
                     "baseline RSS GiB": gib(runs[0]["baseline_rss"]),
                     "peak over baseline GiB": gib(statistics.median(over)),
                     "frame GiB": gib(runs[0]["frame_bytes"]),
                     "x frame": statistics.median(over) / runs[0]["frame_bytes"]})
    print_table(rows, title=f"\nreading {days} days of features ({repeat} runs each, alternating)")
    old, new = rows
    same = {r["checksum"] for rs in results.values() for r in rs}
    print(f"\nsame frame: {'yes' if len(same) == 1 else 'NO: checksums ' + str(sorted(same))}")
    print(f"peak over baseline: {new['peak over baseline GiB']:.2f} GiB vs {old['peak over baseline GiB']:.2f} GiB"
          f" (ratio {new['peak over baseline GiB'] / old['peak over baseline GiB']:.2f});"
          f" time {new['seconds (median)']:.1f} s vs {old['seconds (median)']:.1f} s"
          f" (ratio {new['seconds (median)'] / old['seconds (median)']:.2f})")
    print(f"{verdict(new['x frame'] <= 2.0 and len(same) == 1)}: read peaks at {new['x frame']:.2f}x the frame"
          f" (target <= 2), the per-day concat at {old['x frame']:.2f}x")


if __name__ == "__main__":
    main()
