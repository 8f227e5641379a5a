"""Do simulated days rank the models as real days do? The default models on d_1914..d_1941, real vs simulated.

    .venv/bin/python bench/bench_realism.py               # 3 simulated windows (seeds 0, 1, 2), ~2-4 min
    .venv/bin/python bench/bench_realism.py --seeds 0     # one simulated window
    .venv/bin/python bench/bench_realism.py --seeds 0 1 --cutoffs 1913 1885 1857 1829 1801 1773 1745
                                                          # seven windows and the summary over them, ~25 min

The real slice (``$M5_DATA_DIR``, default ``<repo>/../shared/data/m5``: 290 series, d_1..d_1941)
is stored up to d_1913 (M5's validation cutoff) and copied into workspaces that each receive
the 28 days d_1914..d_1941 through ``arrive_next_day``: one replays the real days, the others
simulate them (nothing held back), each from the data up to d_1913 and its own simulated days
only. Every default model (``m5ops init`` registers one per kind) is trained once, on the real
workspace, up to d_1913 (the simulated ones hold the same days up to there), and its forecast of
the window is scored by M5's WRMSSE against each workspace's actual days: the same forecast,
real or simulated days. Targets: the models rank the same on the simulated window as on the
real one, and each model's WRMSSE relative to seasonal naive on the simulated window is within
10% of its value on the real one. With several ``--cutoffs``, the same for the 28 days after each,
then each model's mean WRMSSE/sNaive over the windows, simulated against real (``Windows``): real
windows differ from one another by more than 10%, so one window cannot tell a simulator that
leans towards a model from one that does not.

The slice's prices stop at week 11613 (d_1918) for 280 of its 290 series (see PROVENANCE.md);
the loader carries the last price forward, as the simulator does, so the models see the same
kind of price features in both windows.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table, verdict  # noqa: E402

from m5ops.data.simulate import LOOKBACK_DAYS  # noqa: E402
from m5ops.models import ForecastModel  # noqa: E402
from m5ops.pipeline.arrival import arrive_next_day  # noqa: E402
from m5ops.pipeline.lifecycle import DEFAULT_MODELS  # noqa: E402
from m5ops.pipeline.modeling import (  # noqa: E402
    WorkspaceData, actual_matrix, forecast_matrix, test_input, train_version, wrmsse_for,
)
from m5ops.pipeline.workspace_init import InitOptions, init_workspace  # noqa: E402
from m5ops.stores.layout import Workspace  # noqa: E402

CUTOFF = 1913  # M5's validation cutoff: the models and the simulator see the data up to here
WINDOW = 28
BASELINE = "seasonal-naive"
LAST_DAY = 1941  # the slice's last day
FIRST_CUTOFF = LOOKBACK_DAYS + 365  # the simulator's lookback, and a year of training days after it
RATIO_TOLERANCE = 0.10  # each model's WRMSSE/sNaive on simulated days within 10% of the real one


@dataclass
class Realism:
    """The default models' WRMSSE on the real window and on each simulated one."""

    real: pd.Series  # model -> WRMSSE on the real days
    simulated: pd.DataFrame  # model x seed -> WRMSSE on the simulated days
    cutoff: int = CUTOFF  # the last day both windows share: they are the 28 days after it

    def table(self) -> pd.DataFrame:
        """Per model: WRMSSE and WRMSSE/sNaive, real and simulated (mean over seeds), and their ratio."""
        sim = self.simulated.mean(axis=1)
        out = pd.DataFrame({"real": self.real, "simulated": sim})
        out["real_vs_snaive"] = out["real"] / out.loc[BASELINE, "real"]
        relative = self.simulated.div(self.simulated.loc[BASELINE], axis=1)
        out["sim_vs_snaive"] = relative.mean(axis=1)
        out["sim_vs_snaive_min"] = relative.min(axis=1)
        out["sim_vs_snaive_max"] = relative.max(axis=1)
        out["relative_change"] = out["sim_vs_snaive"] / out["real_vs_snaive"] - 1
        return out

    def same_ranking(self, seed=None) -> bool:
        """Whether the simulated window (one seed, or the mean over seeds) ranks the models as the real one."""
        sim = self.simulated.mean(axis=1) if seed is None else self.simulated[seed]
        return list(self.real.sort_values().index) == list(sim.sort_values().index)

    def worst_relative_change(self, seed=None) -> float:
        """The largest |sim/sNaive over real/sNaive - 1| over the models."""
        real = self.real / self.real[BASELINE]
        sims = self.simulated if seed is None else self.simulated[[seed]]
        relative = sims.div(sims.loc[BASELINE], axis=1)
        return float(relative.div(real, axis=0).sub(1).abs().max().max())


@dataclass
class Windows:
    """The same measure after several cutoffs: what the windows say together, against what one says.

    Real 28-day windows differ from each other by more than the 10% asked of one simulated
    window (the moving average's WRMSSE/sNaive on the real slice runs 0.83-1.29 over the 26
    windows after d_1213, d_1241, ..., d_1913: ``--spread``), and a simulator fitted on the
    history cannot know which way the next real window will go. What it must not do is lean one
    way: over the windows, each model's mean WRMSSE/sNaive on simulated days against its mean on
    the real ones.
    """

    results: dict[int, Realism]  # cutoff -> the measure of the 28 days after it

    def ratios(self, simulated: bool) -> pd.DataFrame:
        """model x cutoff -> WRMSSE/sNaive, real or simulated (mean over seeds)."""
        column = "sim_vs_snaive" if simulated else "real_vs_snaive"
        return pd.DataFrame({cutoff: result.table()[column] for cutoff, result in self.results.items()})

    def table(self) -> pd.DataFrame:
        """Per model: mean WRMSSE/sNaive, real and simulated, their change, and each window's change's range."""
        real, sim = self.ratios(simulated=False), self.ratios(simulated=True)
        change = sim / real - 1
        return pd.DataFrame({"real_mean": real.mean(axis=1), "real_min": real.min(axis=1), "real_max": real.max(axis=1),
                             "sim_mean": sim.mean(axis=1), "change_of_means": sim.mean(axis=1) / real.mean(axis=1) - 1,
                             "window_change_min": change.min(axis=1), "window_change_max": change.max(axis=1)})

    def worst_change_of_means(self) -> float:
        """The largest |mean simulated WRMSSE/sNaive over the mean real one - 1| over the models."""
        return float(self.table()["change_of_means"].abs().max())

    def same_ranking_of_means(self) -> bool:
        """Whether the models' mean WRMSSE/sNaive ranks them alike, real and simulated."""
        table = self.table()
        return list(table["real_mean"].sort_values().index) == list(table["sim_mean"].sort_values().index)


def m5_dir(given: str | None = None) -> Path:
    """The real M5 slice: given, else $M5_DATA_DIR, else <repo>/../shared/data/m5."""
    repo = Path(__file__).resolve().parent.parent
    return Path(given or os.environ.get("M5_DATA_DIR") or repo.parent / "shared" / "data" / "m5")


def measure(folder: Path, seeds: list[int], workdir: Path, log=print, cutoff: int = CUTOFF) -> Realism:
    """Train the default models up to ``cutoff``; score them on the real 28 days after it and on simulated ones."""
    base = workdir / "base"
    started = time.perf_counter()
    init_workspace(base, InitOptions(source="m5", m5_dir=str(folder), start_day=cutoff, progress=False))
    log(f"workspace of the slice up to d_{cutoff} built in {time.perf_counter() - started:.0f} s")
    real = _copy(base, workdir / "real")
    _arrive(real, WINDOW, seed=None)
    sims = {}
    for seed in seeds:
        sim = _copy(base, workdir / f"sim{seed}")
        sim.holdback_path.unlink()  # nothing held back: every day of the window is simulated
        started = time.perf_counter()
        _arrive(sim, WINDOW, seed=seed)
        log(f"simulated d_{cutoff + 1}..d_{cutoff + WINDOW} with seed {seed} in {time.perf_counter() - started:.1f} s")
        sims[seed] = WorkspaceData.open(sim.home)
    data = WorkspaceData.open(real.home)
    assert data.split.test_range() == (cutoff + 1, cutoff + WINDOW)
    models = _train(data, log)
    wrmsse = wrmsse_for(data)  # scales and weights from the days up to the cutoff: the same in every copy
    real_scores = pd.Series({name: _score(model, data, wrmsse) for name, model in models.items()})
    sim_scores = pd.DataFrame({seed: {name: _score(model, sim, wrmsse) for name, model in models.items()}
                               for seed, sim in sims.items()})
    return Realism(real_scores, sim_scores, cutoff)


def _copy(base: Path, home: Path) -> Workspace:
    shutil.copytree(base, home)
    return Workspace(home)


def _arrive(workspace: Workspace, days: int, seed: int | None) -> None:
    for _ in range(days):
        arrive_next_day(workspace, seed=seed)


def _train(data: WorkspaceData, log) -> dict[str, ForecastModel]:
    """Every default model trained with ``train_version`` up to the day before the test window."""
    models = {}
    for name in DEFAULT_MODELS:
        started = time.perf_counter()
        models[name] = train_version(data, name, force=True).model
        log(f"trained {name} in {time.perf_counter() - started:.1f} s")
    return models


def _score(model: ForecastModel, data: WorkspaceData, wrmsse) -> float:
    """WRMSSE of the model's forecast of the workspace's test window against its actual days."""
    inp = test_input(data)
    n = len(data.series)
    return float(wrmsse.score(actual_matrix(inp, n), forecast_matrix(model, inp, n)).overall)


def baseline_spread(folder: Path, workdir: Path, cutoffs: list[int]) -> pd.DataFrame:
    """The baselines' WRMSSE on the real 28 days after each cutoff, and the moving average's over seasonal naive's.

    No model is trained and nothing simulated: how much real windows differ from one another in
    the ratio the realism target holds to 10%. The forecasts are the default baselines' own
    (``SeasonalNaiveModel``, ``MovingAverageModel``), from the 28 days before the window.
    """
    import numpy as np

    from m5ops.data.store import DayStore
    from m5ops.models.base import ForecastInput
    from m5ops.models.baselines import MovingAverageModel, SeasonalNaiveModel
    from m5ops.pipeline.scales import wrmsse_at

    home = workdir / "whole"
    init_workspace(home, InitOptions(source="m5", m5_dir=str(folder), start_day=LAST_DAY, progress=False))
    workspace = Workspace(home)
    store = DayStore(workspace.data_dir)
    nothing = pd.DataFrame(columns=["series", "day", "sales"])  # the baselines learn nothing
    models = {BASELINE: SeasonalNaiveModel().fit(nothing), "moving-average": MovingAverageModel().fit(nothing)}
    n = store.n_series()
    rows = []
    for cutoff in cutoffs:
        history, _ = store.read_matrix(cutoff - WINDOW + 1, cutoff)
        actual, _ = store.read_matrix(cutoff + 1, cutoff + WINDOW)
        window = pd.DataFrame({"series": np.repeat(np.arange(n), WINDOW),
                               "day": np.tile(np.arange(WINDOW), n) + cutoff + 1})
        inp = ForecastInput(window, history, cutoff + 1)
        wrmsse = wrmsse_at(workspace, cutoff, store=store)
        scores = {name: float(wrmsse.score(actual, forecast_matrix(model, inp, n))) for name, model in models.items()}
        rows.append({"cutoff": cutoff, **scores, "ratio": scores["moving-average"] / scores[BASELINE]})
    return pd.DataFrame(rows)


def report_spread(spread: pd.DataFrame) -> None:
    """Print the baselines on each real window and how far the ratio spreads."""
    print_table(spread.to_dict("records"), columns=["cutoff", BASELINE, "moving-average", "ratio"],
                title="WRMSSE of the baselines on real 28-day windows (ratio: moving average / seasonal naive)")
    ratio, last = spread["ratio"], spread["ratio"].iloc[-1]
    print(f"\nmoving average / seasonal naive over {len(ratio)} real windows: median {ratio.median():.3f},"
          f" {ratio.min():.3f}..{ratio.max():.3f}, standard deviation {ratio.std():.3f}; after"
          f" d_{spread['cutoff'].iloc[-1]}: {last:.3f} (higher than {(ratio < last).mean():.0%} of them)")


def report(result: Realism) -> bool:
    """Print the table and the two target lines; True if both are met (on the mean over seeds)."""
    table = result.table()
    rows = [{"model": name, **row} for name, row in table.iterrows()]
    print_table(rows, columns=["model", "real", "simulated", "real_vs_snaive", "sim_vs_snaive",
                               "sim_vs_snaive_min", "sim_vs_snaive_max", "relative_change"],
                title=f"WRMSSE on d_{result.cutoff + 1}..d_{result.cutoff + WINDOW}: real, and simulated from the data"
                      f" up to d_{result.cutoff} (mean of {result.simulated.shape[1]} seed(s))")
    print("\nper seed:")
    print(result.simulated.round(4).to_string())
    ranked = result.same_ranking()
    per_seed = {seed: result.same_ranking(seed) for seed in result.simulated.columns}
    worst = result.worst_relative_change()
    worst_seed = max(result.worst_relative_change(seed) for seed in result.simulated.columns)
    print(f"\nreal ranking:      {' < '.join(result.real.sort_values().index)}")
    print(f"simulated ranking: {' < '.join(result.simulated.mean(axis=1).sort_values().index)}")
    print(f"same ranking (mean over seeds): {verdict(ranked)}; per seed: {per_seed}")
    print(f"largest change of WRMSSE/sNaive, simulated vs real: {worst:.1%} (mean over seeds), "
          f"{worst_seed:.1%} (worst seed); target <= {RATIO_TOLERANCE:.0%}: {verdict(worst <= RATIO_TOLERANCE)}")
    return ranked and worst <= RATIO_TOLERANCE


def report_windows(windows: Windows) -> bool:
    """Print the summary over the windows; True if the means keep the ranking and lie within 10%."""
    table = windows.table()
    print_table([{"model": name, **row} for name, row in table.iterrows()],
                columns=["model", "real_mean", "real_min", "real_max", "sim_mean", "change_of_means",
                         "window_change_min", "window_change_max"],
                title=f"WRMSSE/sNaive over {len(windows.results)} windows (cutoffs "
                      f"{', '.join(f'd_{c}' for c in windows.results)}): real and simulated")
    worst, ranked = windows.worst_change_of_means(), windows.same_ranking_of_means()
    print(f"same ranking of the means: {verdict(ranked)}")
    print(f"largest change of the mean WRMSSE/sNaive, simulated vs real: {worst:.1%}; target <= "
          f"{RATIO_TOLERANCE:.0%}: {verdict(worst <= RATIO_TOLERANCE)}")
    return ranked and worst <= RATIO_TOLERANCE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m5-dir", default=None, help="real M5 folder (default: $M5_DATA_DIR or ../shared/data/m5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the simulated windows")
    parser.add_argument("--cutoffs", type=int, nargs="+", default=[CUTOFF],
                        help="the windows: the 28 days after each cutoff day (several: also the summary over them;"
                             " each costs 2-5 min)")
    parser.add_argument("--spread", action="store_true",
                        help="instead: the baselines on the real windows after d_1213, d_1241, ..., d_1913 (~1 min)")
    parser.add_argument("--dir", default=None, help="folder for the temporary workspaces (default: system temp)")
    args = parser.parse_args()
    folder = m5_dir(args.m5_dir)
    if not folder.is_dir():
        raise SystemExit(f"no M5 folder at {folder}; pass --m5-dir or set M5_DATA_DIR")
    outside = [c for c in args.cutoffs if not FIRST_CUTOFF <= c <= LAST_DAY - WINDOW]
    if outside:
        print(f"cutoff(s) {outside} leave too little history before them (a year's training window and the"
              f" simulator's lookback) or fewer than {WINDOW} real days after; pick days {FIRST_CUTOFF}.."
              f"{LAST_DAY - WINDOW}", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="m5ops-bench-realism-", dir=args.dir))
    try:
        if args.spread:
            report_spread(baseline_spread(folder, tmp, list(range(1213, CUTOFF + 1, WINDOW))))
            return 0
        results, met = {}, []
        for cutoff in args.cutoffs:
            workdir = tmp / f"d_{cutoff}"
            workdir.mkdir()
            results[cutoff] = measure(folder, args.seeds, workdir, log=lambda line: print(line, file=sys.stderr),
                                      cutoff=cutoff)
            met.append(report(results[cutoff]))
            print()
        if len(results) > 1:
            return 0 if report_windows(Windows(results)) else 1
        return 0 if all(met) else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
