"""Per-patient pages: a separate, clearly named folder, off by default, on with a flag."""

from __future__ import annotations

from tests.conftest import GOLDEN


def test_patient_pages_are_not_published_by_default(refresh):
    refresh.ok(GOLDEN / "basic" / "inbox")
    assert (refresh.reports / "network" / "network.html").is_file()
    assert not (refresh.reports / "patients").exists()
    for page in refresh.reports.glob("*.html"):
        assert "patients/" not in page.read_text()
        assert "P1" not in page.read_text().replace("PHQ", "")


def test_patient_pages_are_written_with_the_flag_and_removed_when_it_is_off_again(refresh):
    refresh.ok(GOLDEN / "basic" / "inbox", patient_pages=True)
    pages = sorted(p.name for p in (refresh.reports / "patients").glob("*.html"))
    assert pages == ["index.html", "p1.html", "p2.html", "p3.html", "p4.html", "p5.html", "p6.html", "p7.html"]
    page = (refresh.reports / "patients" / "p4.html").read_text()
    assert "Patient P4 — frisco, crps" in page and "../plotly.min.js" in page
    assert "Pain NRS" in page and "PHQ-9" in page
    refresh.ok(GOLDEN / "basic" / "inbox")
    assert not (refresh.reports / "patients").exists()
