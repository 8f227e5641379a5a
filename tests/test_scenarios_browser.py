"""The dashboard's header shows the demand scenarios still to apply, in a real browser against a real Voila server."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser as B  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
WAIT_MS = 60_000


def test_the_header_lists_scenarios_as_they_are_added_and_removed(tmp_path):
    if (reason := B.browser_missing()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(reason)
    home = B.make_workspace(tmp_path / "ws", {"naive": "seasonal_naive"}, items=1, days=176)
    today = int(B.m5ops(home, "status", "--json").stdout.split('"today_day": ')[1].split(",")[0])
    B.m5ops(home, "scenario", "add", "--from-day", str(today + 3), "--factor", "1.6", "--category", "FOODS")
    with B.voila(home, tmp_path / "voila.log") as url, B.chromium() as browser:
        page = B.open_page(browser)
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        header = page.locator(".m5-header .m5-scenarios")
        header.wait_for()
        assert header.text_content() == f"demand scenarios: #1 FOODS x1.60 from d_{today + 3}"
        B.m5ops(home, "scenario", "add", "--from-day", str(today + 1), "--to-day", str(today + 2), "--factor", "0.5",
                "--store", "CA_1")
        page.locator(".m5-scenarios", has_text=f"#2 CA_1 x0.50 d_{today + 1}..d_{today + 2}").wait_for()
        B.screenshot(page, "scenarios-header")
        B.m5ops(home, "scenario", "remove", "1")
        B.m5ops(home, "scenario", "remove", "2")
        page.locator(".m5-header .m5-scenarios").wait_for(state="detached")  # none left: the line goes
        assert "today" in page.locator(".m5-header .m5-today").text_content()
        page.close(run_before_unload=True)
