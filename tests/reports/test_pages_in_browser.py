"""The published pages in a real browser: headless Chromium, from disk, with the network off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipelines.reports.board_pack import BROWSER_ARGS, chromium

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = chromium()

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
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


def test_every_page_loads_from_disk_offline_without_errors_and_draws_every_figure(browser, demo_warehouse):
    reports = demo_warehouse.parents[1] / "reports"
    pages = sorted(reports.rglob("*.html"))
    names = {str(p.relative_to(reports)) for p in pages}
    assert {"index.html", "network/index.html", "network/network.html", "operator/refresh_summary.html"} <= names
    assert any(p.name.startswith("clinic-") and p.parent.parent.name == "clinics" for p in pages)
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    for path in pages:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message, sink=errors: sink.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error, sink=errors: sink.append(str(error)))
        page.goto(path.as_uri(), wait_until="load")
        figures = page.evaluate(FIGURES_DRAWN)
        shot = "-".join(path.relative_to(reports).with_suffix("").parts)
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
        assert errors == [], (path.name, errors)
        if path.name in ("network.html",) or path.name.startswith("clinic-"):
            assert len(figures) >= 8, (path.name, figures)
        for figure in figures:
            assert figure["svg"] > 0 and figure["marks"] > 0 and figure["fits"], (path.name, figure)
        page.close()
    context.close()


def test_a_clinics_folder_names_no_other_clinic_and_links_nowhere_outside_it(demo_warehouse):
    reports = demo_warehouse.parents[1] / "reports"
    folders = sorted((reports / "clinics").iterdir())
    clinics = ["austin", "denver", "frisco", "tampa"]
    assert len(folders) == len(clinics)
    for folder in folders:
        text = " ".join(path.read_text() for path in folder.glob("*.html"))
        own = [c for c in clinics if folder.name.startswith(c)]
        assert len(own) == 1
        for other in set(clinics) - set(own):
            assert other not in text, (folder.name, other)
        for link in re.findall(r"href='([^']+)'", text):
            assert "/" not in link and (folder / link).is_file(), (folder.name, link)


def test_the_instrument_menu_switches_the_relief_curves_without_a_server(browser, demo_warehouse):
    page = browser.new_context(offline=True).new_page()
    page.goto((demo_warehouse.parents[1] / "reports" / "network" / "network.html").as_uri(), wait_until="load")
    visible = "() => document.getElementById('figure-relief-depression').data.filter(t => t.visible).map(t => t.name)"
    before = page.evaluate(visible)
    page.locator("#figure-relief-depression .updatemenu-header-group").click()
    page.locator("#figure-relief-depression .updatemenu-item-text", has_text="GAD-7").click()
    after = page.evaluate(visible)
    assert before and after and before != after


MENUS_UNDER_TOOLBAR = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(plot => {
    const menu = plot.querySelector('g.updatemenu-header-group');
    const toolbar = plot.querySelector('.modebar');
    if (!menu || !toolbar) return [];
    const [a, b] = [menu.getBoundingClientRect(), toolbar.getBoundingClientRect()];
    const apart = a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top;
    return apart ? [] : [plot.id];
})
"""


def test_no_instrument_menu_lies_under_the_plotly_toolbar(browser, demo_warehouse):
    page = browser.new_context(offline=True, viewport={"width": 1400, "height": 900}).new_page()
    page.goto((demo_warehouse.parents[1] / "reports" / "network" / "network.html").as_uri(), wait_until="load")
    assert page.locator("g.updatemenu-header-group").count() >= 4
    assert page.evaluate(MENUS_UNDER_TOOLBAR) == []


TICK_LABELS_MEETING = """
() => {
    const plot = document.getElementById('figure-trends');
    if (!plot) return null;
    const boxes = selector => Array.from(plot.querySelectorAll(selector)).map(t => t.getBoundingClientRect());
    const [xs, ys] = [boxes('g.xtick text'), boxes('g.ytick text')];
    const meet = (a, b) => !(a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top);
    return xs.some(x => ys.some(y => meet(x, y)));
}
"""


def test_no_trend_date_label_meets_a_share_label(browser, demo_warehouse):
    """A clinic's trend is drawn by runs of months, whose first label ("2023-12 to 2024-08") reaches left of
    its tick, under the y axis's 0%."""
    page = browser.new_context(offline=True, viewport={"width": 1400, "height": 900}).new_page()
    pages = sorted((demo_warehouse.parents[1] / "reports").glob("**/*.html"))
    checked = 0
    for path in pages:
        page.goto(path.as_uri(), wait_until="load")
        meeting = page.evaluate(TICK_LABELS_MEETING)
        checked += meeting is not None
        assert meeting in (None, False), path.name
    assert checked >= 5  # the network and four clinics, in the owner's and the directors' folders


LEGENDS_MEETING_AXIS_TITLES = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap(plot => {
    const legend = plot.querySelector('g.legend');
    const title = plot.querySelector('g.g-xtitle text');
    if (!legend || !title || !title.textContent) return [];
    const [a, b] = [legend.getBoundingClientRect(), title.getBoundingClientRect()];
    const apart = a.top >= b.bottom + 4 || b.top >= a.bottom + 4 || a.right <= b.left || b.right <= a.left;
    return apart ? [] : [plot.id];
})
"""


def test_no_legend_lies_against_its_figures_axis_title(browser, demo_warehouse):
    """The case-mix figure is short for four clinics: its legend, a fifth of the plot's height below it, sat
    against the axis title."""
    page = browser.new_context(offline=True, viewport={"width": 1400, "height": 900}).new_page()
    pages = sorted((demo_warehouse.parents[1] / "reports").glob("**/*.html"))
    for path in pages:
        page.goto(path.as_uri(), wait_until="load")
        assert page.evaluate(LEGENDS_MEETING_AXIS_TITLES) == [], path.name
    assert len(pages) >= 10


TREND_POINTS = """
(instrument) => {
    const plot = document.getElementById('figure-trends');
    const button = plot.layout.updatemenus[0].buttons.find(b => b.label === instrument);
    if (!button) return null;
    const visible = button.args[0].visible;
    const trace = plot.data.find((t, i) => visible[i] && t.name.startsWith('response rate'));
    return trace.y.filter(y => y !== null).length;
}
"""


@pytest.fixture(scope="module")
def clinics_without_vitals(tmp_path_factory):
    """Four clinics of about 600 patients each, from a mapping that sends no vitals."""
    from datetime import date

    import polars as pl

    from pipelines.demo.generator import write_inbox
    from tests.conftest import Refresh

    root = tmp_path_factory.mktemp("no-vitals")
    write_inbox(root / "inbox", patients=2400, clinics=4, seed=5, end_date=date(2026, 6, 30), years=3.0)
    infusions = pl.read_csv(root / "inbox" / "infusions.csv", infer_schema=False)
    infusions.select(c for c in infusions.columns if not c.startswith(("bp_", "heart_rate", "spo2"))).write_csv(
        root / "inbox" / "infusions.csv"
    )
    refresh = Refresh(root / "out")
    # In a thread of its own: the browser's sync API runs an event loop in this one, which Dagster's run would
    # find running when it closes its own (a RuntimeWarning of a coroutine never awaited).
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(refresh.ok, root / "inbox", as_of="2026-06-30T00:00:00").result()
    return refresh


def test_every_clinic_page_of_a_typical_clinic_shows_trends_the_league_table_and_no_invented_safety_rate(
    browser, clinics_without_vitals
):
    reports = clinics_without_vitals.reports
    context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    page = context.new_page()
    page.goto((reports / "network" / "network.html").as_uri(), wait_until="load")
    league = page.evaluate(
        "() => Array.from(document.querySelectorAll('table.league tbody tr')).map(r => r.cells[0].innerText)"
    )
    # Named by clinics.csv (spec §10.1), not by id.
    assert sorted(league) == [f"{city} Ketamine Center" for city in ("Austin", "Denver", "Frisco", "Tampa")]
    page.locator("table.league th", has_text="PHQ-9 response").click()  # sortable by a click
    clinic_pages = sorted(reports.glob("clinics/*/clinic-*.html"))
    assert len(clinic_pages) == 4
    pain = {
        row["dimension_value"]: (row["responder_count"], row["evaluable_count"] - row["responder_count"])
        for row in clinics_without_vitals.rows(
            "select dimension_value, evaluable_count, responder_count from marts.response_rates "
            "where dimension = 'clinic' and instrument = 'nrs_pain' and series_kind = 'induction'"
        )
    }
    for path in clinic_pages:
        page.goto(path.as_uri(), wait_until="load")
        assert page.evaluate(TREND_POINTS, "PHQ-9") >= 4, path.name
        # Each point needs 11 responders and 11 non-responders (spec §10.8): a clinic with 24 pain responders
        # in three years cannot have four. Every clinic gets as many as its patients allow, to within a point
        # for months that do not split evenly.
        clinic = page.locator("h1").inner_text().removeprefix("Clinic: ").removesuffix(" Ketamine Center").lower()
        responders, others = pain[clinic]
        assert page.evaluate(TREND_POINTS, "Pain NRS") >= min(4, responders // 13, others // 13), clinic
        text = page.inner_text("main")
        assert "hypertensive sessions (≥180/110 mmHg): not recorded" in text
        assert "desaturation below 90%: not recorded" in text
        assert " 0.0%" not in text.split("Safety")[1].split(".")[0]
        page.screenshot(path=str(ARTIFACTS / f"no-vitals-{path.stem}.png"), full_page=True)
    context.close()


PRINTED_CARDS = """
() => Array.from(document.querySelectorAll('.card')).map(card => ({
    height: card.getBoundingClientRect().height,
    breaks: getComputedStyle(card).breakInside,
}))
"""


def test_the_board_pack_prints_each_readers_page_with_every_figure_whole_on_a_sheet(browser, tmp_path):
    from datetime import date

    from pipelines.demo.generator import write_inbox
    from pipelines.reports import board_pack
    from tests.conftest import Refresh

    write_inbox(tmp_path / "inbox", patients=800, clinics=2, seed=3, end_date=date(2026, 6, 30), years=2.0)
    refresh = Refresh(tmp_path / "out")
    # In its own process, as the nightly run prints it (this one drives a browser already), with paths relative
    # to where it runs, as make demo gives them.
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "refresh", "--inbox", "inbox", "--warehouse",
         "out/warehouse/outcomes.duckdb", "--reports", "out/reports", "--as-of", "2026-06-30T00:00:00"],
        capture_output=True, text=True, env={**os.environ, "OUTCOMES_BOARD_PACK": "true"}, cwd=tmp_path,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-2:-1] == ["board pack: 3 PDFs"]
    packs = sorted(refresh.reports.rglob("board-pack-*.pdf"))
    assert [p.parent.name for p in packs] == ["austin-c7c13192", "frisco-a53deaef", "network"]
    for pack in packs:
        data = pack.read_bytes()
        assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page[^s]", data)) >= 3, pack.name
    # Geometry: laid out as printed, no card is taller than a sheet's printable height, and none may break.
    printable = (297 - 12 - 16) / 25.4 * 96 / board_pack.PRINT_SCALE  # A4 less margins, in layout pixels
    page = browser.new_context(offline=True, viewport={"width": board_pack.LAYOUT_WIDTH, "height": 900}).new_page()
    page.emulate_media(media="print")
    for source in [*refresh.reports.glob("clinics/*/clinic-*.html"), refresh.reports / "network" / "network.html"]:
        page.goto(source.as_uri(), wait_until="load")
        cards = page.evaluate(PRINTED_CARDS)
        assert len(cards) >= 8
        for card in cards:
            assert card["breaks"] == "avoid" and card["height"] < printable, (source.name, card)


def test_without_chromium_the_board_pack_is_skipped_and_says_so(monkeypatch, tmp_path):
    from pipelines.reports import board_pack

    monkeypatch.setattr(board_pack.shutil, "which", lambda name: None)
    said = board_pack.write_board_packs({tmp_path / "a.html": tmp_path / "a.pdf"}, "2026-06-30", "2025-01 to 2026-06")
    assert said == "board pack PDFs skipped: Chromium is not installed (apt-get install chromium)"
    assert not (tmp_path / "a.pdf").exists()
