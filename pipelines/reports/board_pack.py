"""The printable board pack: a reader's page printed to PDF by headless Chromium, each figure whole on a page.

Chromium comes from the operating system's packages (Debian's chromium), and
Playwright drives it: the same pair the browser tests use. Without Chromium the
refresh still succeeds and says the PDFs were skipped.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

# The page is laid out at this width before printing, so that the figures draw at their printed size.
LAYOUT_WIDTH = 1100
PRINT_SCALE = 0.65  # 1100 px to the width of an A4 sheet less its margins
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str | None:
    """Return the path of the system's Chromium, or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def write_board_packs(pages: dict[Path, Path], as_of: str, period: str) -> str:
    """Print each page (HTML path -> PDF path) and return one line saying what was done.

    The pages are the product and the PDFs a copy of them: a browser that fails does not fail the refresh,
    and the line says why the PDFs are missing.
    """
    try:
        return print_pages(pages, as_of, period)
    except Exception as error:  # Chromium crashed, ran out of memory, or refused a page
        for partial in [target.with_name(target.name + ".partial") for target in pages.values()]:
            partial.unlink(missing_ok=True)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        return f"board pack PDFs failed: {reason}"


def print_pages(pages: dict[Path, Path], as_of: str, period: str) -> str:
    """write_board_packs' work, which may raise."""
    binary = chromium()
    if binary is None:
        return "board pack PDFs skipped: Chromium is not installed (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "board pack PDFs skipped: the playwright package is not installed"
    footer = (
        "<div style='font-size:8px;width:100%;padding:0 12mm;color:#5a6b7d;display:flex;"
        "justify-content:space-between'>"
        f"<span>Ketamine infusion outcomes · series started {html.escape(period)} · data as of "
        f"{html.escape(as_of)}</span><span>page <span class='pageNumber'></span> of "
        "<span class='totalPages'></span></span></div>"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=BROWSER_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": LAYOUT_WIDTH, "height": 900})
            for source, target in pages.items():
                page = context.new_page()
                # Laid out for print from the start (the pages' own print style: one column of whole cards),
                # so that Plotly draws every figure at the width it is printed at.
                page.emulate_media(media="print")
                page.goto(source.resolve().as_uri(), wait_until="load")
                partial = target.with_name(target.name + ".partial")
                page.pdf(
                    path=str(partial),
                    format="A4",
                    scale=PRINT_SCALE,
                    print_background=True,
                    display_header_footer=True,
                    header_template="<span></span>",
                    footer_template=footer,
                    margin={"top": "12mm", "bottom": "16mm", "left": "10mm", "right": "10mm"},
                )
                partial.replace(target)
                page.close()
        finally:
            browser.close()
    return f"board pack: {len(pages)} PDF{'s' if len(pages) != 1 else ''}"
