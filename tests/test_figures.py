"""The task notebooks' static charts: day ticks within the data, and the PNG a notebook shows."""
from __future__ import annotations

import re

import matplotlib
import pandas as pd
import pytest
from IPython.core.formatters import DisplayFormatter

import browser as B
from m5ops.data.arrival import Arrival
from m5ops.data.schema import day_date
from m5ops.pipeline import figures, tasks
from m5ops.pipeline.modeling import TrainedVersion, WorkspaceData, load_current

matplotlib.use("Agg")
DAY_LABEL = re.compile(r"^\d\d [A-Z][a-z]{2}$")  # "14 Mar": a day, never "06 AM"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> str:
    """A small workspace, two models trained, three days arrived, evaluated and issued."""
    home = B.make_workspace(tmp_path_factory.mktemp("figures") / "ws",
                            {"naive": "seasonal_naive", "avg": "moving_average"}, items=1, days=176)
    for name in ("naive", "avg"):
        tasks.train(str(home), "t", name)
    for i in range(3):
        tasks.simulate_day(str(home), f"s{i}")
        tasks.evaluate(str(home), f"e{i}")
        tasks.issue_forecast(str(home), f"i{i}")
    return str(home)


def day_ticks(chart) -> pd.DatetimeIndex:
    """The x ticks of the chart's axes as days, after checking each is labelled as a day."""
    axes = chart.figure.axes[0]
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert labels and all(DAY_LABEL.match(label) for label in labels), labels
    return pd.DatetimeIndex(matplotlib.dates.num2date(axes.get_xticks())).tz_localize(None)


def png_of(chart) -> bytes:
    """What IPython puts in the notebook for the chart: its PNG, and its text stand-in."""
    data, _ = DisplayFormatter().format(chart)
    assert data["text/plain"].startswith("<chart: "), data
    return data["image/png"]


def test_metric_history_ticks_are_days_of_the_history(home):
    history = figures.metrics_history(home)
    chart = figures.plot_metric_history(home, "wrmsse")
    ticks = day_ticks(chart)
    dates = pd.DatetimeIndex(history["date"].unique())
    assert set(ticks) <= set(dates) and len(ticks) <= figures.TICKS
    assert {line.get_label() for line in chart.figure.axes[0].get_lines()} == {"naive", "avg"}
    assert png_of(chart)[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_issue_chart_spans_the_actuals_and_the_28_forecast_days_at_most_eight_day_ticks(home):
    issues = figures.todays_issues(home)
    chart = figures.plot_issue(home, issues)
    ticks = day_ticks(chart)
    today = issues[0].issue_day
    assert len(ticks) <= figures.TICKS and ticks.max() <= day_date(today + 28)
    forecast_days = [pd.DatetimeIndex(line.get_xdata()) for line in chart.figure.axes[0].get_lines()
                     if line.get_label().startswith(("naive", "avg"))]  # not the actuals, nor today's mark
    assert len(forecast_days) == 2 and all(d.max() == day_date(today + 28) for d in forecast_days)
    assert png_of(chart)[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_chart_fits_its_fixed_margins(home):
    """Drawn once, uncropped: the labels, ticks, title and legend must lie within the figure."""
    issues = figures.todays_issues(home)
    data = WorkspaceData.open(home)
    today = data.split.today
    sales, prices = data.store.read_matrix(today, today)
    arrival = Arrival(today, "replay", sales[:, 0], prices[:, 0])  # the last day, as its arrival showed it
    model, record = load_current(data, "naive")
    charts = [figures.plot_metric_history(home, "wrmsse"), figures.plot_issue(home, issues),
              figures.plot_recent_totals(home, arrival),
              figures.plot_fit(home, TrainedVersion(model, record["id"], record))]
    for chart in charts:
        figure = chart.figure
        figure.canvas.draw()
        drawn = figure.get_tightbbox(figure.canvas.get_renderer())  # inches
        width, height = figure.get_size_inches()
        assert drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 <= width and drawn.y1 <= height, (chart, drawn, width)
        axes = figure.axes[0]
        legend = axes.get_legend().get_window_extent()  # pixels, as the axes' box below
        assert legend.y0 >= axes.get_window_extent().y1 - 1, chart  # above the axes: it hides no line
        if figure.get_suptitle():
            title = figure.texts[0].get_window_extent()  # the title's band, above the legend's rows
            assert title.y0 >= legend.y1 - 1, chart


def test_the_drift_table_has_a_row_per_evaluated_model_with_its_target_psi_and_band(home):
    table = figures.drift_table(home)
    assert sorted(table["model"]) == ["avg", "naive"]
    assert all(re.fullmatch(r"\d+\.\d{3} \((stable|moderate|significant)\)", text) for text in table["target_psi"])
    assert not table.astype(str).apply(lambda column: column.str.contains("nan|inf")).any().any()
