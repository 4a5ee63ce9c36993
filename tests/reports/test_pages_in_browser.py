"""The published pages in a real browser: headless Chromium, from disk, with the network off."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FIGURES_DRAWN = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => ({
    id: plot.id,
    svg: plot.querySelectorAll('svg.main-svg').length,
    marks: Array.from(plot.querySelectorAll('g.trace path, g.trace .point'))
        .filter(mark => (mark.getAttribute('d') || '').length > 5).length,
    fits: plot.querySelector('svg.main-svg').getBoundingClientRect().width
        <= plot.closest('.card').getBoundingClientRect().width + 1,
}))
"""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def test_every_page_loads_from_disk_offline_without_errors_and_draws_every_figure(browser, demo_warehouse):
    reports = demo_warehouse.parents[1] / "reports"
    pages = sorted(reports.glob("*.html"))
    assert {"index.html", "network.html", "refresh_summary.html"} <= {p.name for p in pages}
    assert any(p.name.startswith("clinic-") for p in pages)
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    for path in pages:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message, sink=errors: sink.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error, sink=errors: sink.append(str(error)))
        page.goto(path.as_uri(), wait_until="load")
        figures = page.evaluate(FIGURES_DRAWN)
        page.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"), full_page=True)
        assert errors == [], (path.name, errors)
        if path.name in ("network.html",) or path.name.startswith("clinic-"):
            assert len(figures) >= 8, (path.name, figures)
        for figure in figures:
            assert figure["svg"] > 0 and figure["marks"] > 0 and figure["fits"], (path.name, figure)
        page.close()
    context.close()


def test_the_instrument_menu_switches_the_relief_curves_without_a_server(browser, demo_warehouse):
    page = browser.new_context(offline=True).new_page()
    page.goto((demo_warehouse.parents[1] / "reports" / "network.html").as_uri(), wait_until="load")
    visible = "() => document.getElementById('figure-relief-depression').data.filter(t => t.visible).map(t => t.name)"
    before = page.evaluate(visible)
    page.locator("#figure-relief-depression .updatemenu-header-group").click()
    page.locator("#figure-relief-depression .updatemenu-item-text", has_text="GAD-7").click()
    after = page.evaluate(visible)
    assert before and after and before != after
