"""Tables and static charts for the task notebooks (the dashboard has its own, interactive ones)."""
from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from m5ops.data.arrival import Arrival
from m5ops.data.schema import RECENT_DAYS, day_date, day_label
from m5ops.pipeline.drift import drift_report
from m5ops.pipeline.modeling import TrainedVersion, WorkspaceData, in_sample_fit
from m5ops.pipeline.serving import serving_model_name
from m5ops.pipeline.tasks import metrics_history
from m5ops.stores.layout import Workspace
from m5ops.stores.ledger import ForecastLedger, Issue

TICKS = 8  # day ticks at most on a chart's date axis
# zlib's fastest level: a chart's PNG is a few percent larger and encodes in a third of the time
# (matplotlib leaves Pillow's default, 6: 15-20 ms of a chart's 60-90)
PNG_OPTIONS = {"compress_level": 1}
# the margins around a chart's axes, in inches: tick labels and the axis label (left), day ticks
# (bottom), a title (top); fixed, so that a chart is drawn once, not once more to find its bounding box
MARGINS = {"left": 0.85, "right": 0.2, "bottom": 0.45, "top": 0.15, "title": 0.3}
# legends sit in rows above the axes, never over the lines: LEGEND_COLUMNS entries a row, LEGEND_ROW inches each
LEGEND_COLUMNS = 5
LEGEND_ROW = 0.22


def arrival_table(arrival: Arrival) -> pd.DataFrame:
    """The arrived day in one row."""
    return pd.DataFrame([arrival.summary()])


def arrival_factors(arrival: Arrival) -> pd.DataFrame:
    """Summary of the factors behind a simulated day (empty for a replayed real day)."""
    if arrival.factors is None:
        return pd.DataFrame()
    return arrival.factors.describe().T[["mean", "min", "50%", "max"]]


def plot_recent_totals(home: str, arrival: Arrival):
    """Total sales of the last weeks, the new day marked."""
    data = WorkspaceData.open(home)
    first = max(data.store.first_day(), arrival.day - RECENT_DAYS)
    sales, _ = data.store.read_matrix(first, arrival.day)
    fig, ax = _axes(9, 3, legend_entries=2)
    dates = day_date(range(first, arrival.day + 1))
    ax.plot(dates, sales.sum(axis=0), color="#4477aa", label="total units")
    ax.scatter([arrival.date], [arrival.sales.sum()], color="#cc3311", zorder=3, label=f"new day ({arrival.source})")
    ax.set_ylabel("units, all series")
    _legend_above(ax)
    _day_ticks(ax, dates)
    return Chart(fig, f"total sales up to {day_label(arrival.day)}")


def split_table(home: str) -> pd.DataFrame:
    """The current train/test split."""
    return pd.DataFrame([WorkspaceData.open(home).split.describe()])


def version_table(trained: TrainedVersion) -> pd.DataFrame:
    """The new version's record in one row, with the gate's verdict and the two scores it compared."""
    record = {k: v for k, v in trained.record.items() if k not in ("metrics", "lineage", "gate")}
    gate = trained.record.get("gate", {})
    verdict = {"gate": gate.get("verdict"), "wrmsse": gate.get("candidate"),
               f"current {gate.get('incumbent_version') or '-'} wrmsse": gate.get("incumbent")}
    return pd.DataFrame([{**record, **trained.record.get("metrics", {}), **verdict}])


def plot_importance(trained: TrainedVersion, top: int = 20):
    """Gain importance of the top features, or a note when the kind has none."""
    importance = trained.model.feature_importance()
    if importance is None or len(importance) == 0:
        return f"{trained.model.kind} has no feature importance"
    fig, ax = _axes(7, 5)
    importance.sort_values().tail(top).plot.barh(ax=ax, color="#4477aa")
    ax.set_xlabel("gain")
    # feature names of any length on the left: cropped to what is drawn, a second draw once a week
    return Chart(fig, f"{trained.model.kind} feature importance", crop=True)


def plot_fit(home: str, trained: TrainedVersion):
    """Actual against fitted total units over the last four training weeks."""
    data = WorkspaceData.open(home)
    totals = in_sample_fit(data, trained.model, trained.record["cutoff_day"])
    fig, ax = _axes(9, 3, title=True, legend_entries=2)
    for column, color, style in (("actual", "#4477aa", "-"), ("fitted", "#cc3311", "--")):
        ax.plot(totals.index, totals[column], color=color, linestyle=style, label=column)
    ax.set_ylabel("units, all series")
    _title(fig, f"{trained.model.kind}: fit on the last 28 training days")
    _legend_above(ax)
    _day_ticks(ax, totals.index)
    return Chart(fig, f"{trained.model.kind} fit on the last 28 training days")


def plot_metric_history(home: str, metric: str):
    """One line per model of a metric over simulated time."""
    history = metrics_history(home)
    if history.empty:
        return "no metrics yet"
    chosen = history[history["metric"] == metric].pivot_table(index="date", columns="model", values="value")
    fig, ax = _axes(9, 3.5, legend_entries=len(chosen.columns))
    for model in chosen.columns:
        ax.plot(chosen.index, chosen[model], marker="o", markersize=3, label=model)
    ax.set_ylabel(metric)
    _legend_above(ax)
    _day_ticks(ax, chosen.index)
    return Chart(fig, f"{metric} history")


def drift_table(home: str) -> pd.DataFrame:
    """Each model's latest drift in one row: the target's PSI, the most drifted feature, how many drift.

    PSI bands: stable < 0.1, moderate 0.1-0.25, significant >= 0.25; "-" where a column had no
    value to compare (too few rows on sale in one of the windows).
    """
    rows = []
    for model, report in drift_report(Workspace(home)).items():
        target = next((c for c in report["columns"] if c["target"]), None)
        features = sorted((c for c in report["columns"] if not c["target"] and c["psi"] is not None),
                          key=lambda c: -c["psi"])
        rows.append({"model": model, "version": report["version"],
                     "reference": f"{day_label(report['reference'][0])}..{day_label(report['reference'][1])}",
                     "current": f"{day_label(report['current'][0])}..{day_label(report['current'][1])}",
                     "target_psi": _psi_text(target), "most_drifted": (f"{features[0]['column']} {_psi_text(features[0])}"
                                                                       if features else "-"),
                     "significant": sum(c["band"] == "significant" for c in features),
                     "moderate": sum(c["band"] == "moderate" for c in features), "features": len(features)})
    return pd.DataFrame(rows)


def _psi_text(column: dict | None) -> str:
    """A drift row's PSI and band, as "0.031 (stable)", or "-" without a value."""
    if column is None or column["psi"] is None:
        return "-"
    return f"{column['psi']:.3f} ({column['band']})"


def todays_issues(home: str) -> list[Issue]:
    """Every issue stored for today, whichever run made it."""
    data = WorkspaceData.open(home)
    ledger = ForecastLedger.of(data.workspace)
    return [ledger.read_issue(model, data.split.today) for model in ledger.models_issued(data.split.today)]


def issue_table(issues: list[Issue]) -> pd.DataFrame:
    """One row per issue: what it forecasts, its totals, where its prices came from."""
    rows = [{"model": i.model, "version": i.version, "issued": day_label(i.issue_day),
             "days": f"{day_label(i.issue_day + 1)}..{day_label(i.issue_day + len(i.target_days))}",
             "total_units": round(float(i.totals().sum()), 1), "mean_per_day": round(float(i.totals().mean()), 1),
             "min_day": round(float(i.totals().min()), 1), "max_day": round(float(i.totals().max()), 1),
             "prices": ", ".join(f"{source} {n} d" for source, n in i.price_source_counts().items())}
            for i in issues]
    return pd.DataFrame(rows)


def issue_daily_totals(issues: list[Issue]) -> pd.DataFrame:
    """The forecast's total units by target day (rows) and model (columns)."""
    if not issues:
        return pd.DataFrame()
    frame = pd.DataFrame({i.model: i.totals().round(1) for i in issues})
    frame.index = day_date(frame.index.to_numpy()).date
    frame.index.name = "date"
    return frame


def plot_issue(home: str, issues: list[Issue]):
    """The next 28 days' total forecast of each model after the last 56 days of actuals; the serving model bold."""
    if not issues:
        return "no model has a version yet: nothing was issued"
    data = WorkspaceData.open(home)
    today = data.split.today
    first = max(data.store.first_day(), today - RECENT_DAYS + 1)
    sales, _ = data.store.read_matrix(first, today)
    serving = serving_model_name(data.workspace)
    fig, ax = _axes(10, 3.5, title=True, legend_entries=1 + len(issues))
    days = day_date(range(first, today + 29))  # the actuals, then the 28 forecast days
    ax.plot(days[:today + 1 - first], sales.sum(axis=0), color="black", label="actual")
    for issue in issues:
        totals = issue.totals()
        bold = issue.model == serving
        ax.plot(day_date(totals.index.to_numpy()), totals.to_numpy(), linewidth=2.5 if bold else 1.2,
                label=f"{issue.model} {issue.version}" + (" (serving)" if bold else ""))
    ax.axvline(day_date(today), color="#999999", linestyle=":")
    ax.set_ylabel("units, all series")
    _title(fig, f"forecasts issued on {day_label(today)} ({day_date(today).date()})")
    _legend_above(ax)
    _day_ticks(ax, days)
    return Chart(fig, f"forecasts issued on {day_label(today)}")


def _day_ticks(ax, dates) -> None:
    """About ``TICKS`` ticks among the x axis's days, labelled by day ("14 Mar").

    Fixed here, not by matplotlib's automatic date locator and formatter, which try their
    candidate steps again at every draw (a third of a chart's cost, and "06 AM" ticks on short spans).
    """
    dates = pd.DatetimeIndex(dates)
    if len(dates):
        step = max(1, -(-len(dates) // TICKS))
        ax.set_xticks(dates[::step], [d.strftime("%d %b") for d in dates[::step]])


def _axes(width: float, height: float, title: bool = False, legend_entries: int = 0):
    """A figure of ``width`` x ``height`` inches and its axes, within the fixed ``MARGINS``.

    Above the axes, from the top: a band for the title (``title``), then the rows of a legend of
    ``legend_entries`` entries (``_legend_above``).
    """
    fig = Figure(figsize=(width, height))
    rows = -(-legend_entries // LEGEND_COLUMNS)
    top = MARGINS["top"] + (MARGINS["title"] if title else 0.0) + rows * LEGEND_ROW
    fig.subplots_adjust(left=MARGINS["left"] / width, right=1 - MARGINS["right"] / width,
                        bottom=MARGINS["bottom"] / height, top=1 - top / height)
    return fig, fig.subplots()


def _title(fig: Figure, text: str) -> None:
    """The chart's title, in the band at the top of the figure (above the legend's rows)."""
    fig.suptitle(text, y=1 - MARGINS["top"] / fig.get_size_inches()[1], va="top", fontsize=12)


def _legend_above(ax) -> None:
    """The legend in rows just above the axes (the room ``_axes`` left for it): it never hides a line."""
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=LEGEND_COLUMNS, frameon=False, fontsize=8,
              borderaxespad=0.1, handlelength=1.5, columnspacing=1.2)


class Chart:
    """A chart a notebook shows as a PNG, drawn once when shown.

    A bare ``Figure``, not pyplot's: nothing is left open for Jupyter's inline backend to show
    again at the cell's end, and no backend's defaults apply. The inline backend crops every
    figure to its bounding box, which costs a draw of its own (a third of a chart's time);
    these charts have fixed margins instead (``crop``: for one whose left margin depends on
    its labels).
    """

    def __init__(self, figure: Figure, description: str, crop: bool = False):
        self.figure, self.description, self.crop = figure, description, crop
        FigureCanvasAgg(self.figure)  # drawn by Agg from the start: savefig would switch canvases at each draw

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", bbox_inches="tight" if self.crop else None, pil_kwargs=PNG_OPTIONS)
        return buffer.getvalue()

    _repr_png_ = png  # what IPython calls to show it

    def __repr__(self) -> str:
        return f"<chart: {self.description}>"
