"""What every published page shares: the stylesheet, plotly.js beside the pages, instrument labels, file names."""

from __future__ import annotations

import re

# plotly.js is written once beside the pages, so that they open from disk with no network.
PLOTLY_FILE = "plotly.min.js"

INSTRUMENT_LABELS = {
    "phq9": "PHQ-9",
    "madrs": "MADRS",
    "gad7": "GAD-7",
    "pcl5": "PCL-5",
    "nrs_pain": "Pain NRS",
    "bpi_interference": "BPI interference",
    "vas_pain": "Pain VAS",
    "hamd17": "HAM-D 17",
    "qids_sr16": "QIDS-SR16",
    "bdi2": "BDI-II",
}

PAGE_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2733;background:#f5f7fa}
header{background:#1d3557;color:#fff;padding:1rem 2rem}header a{color:#cfe3ff;margin-right:1rem}
main{padding:1rem 2rem;max-width:1280px;margin:auto}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:1rem;margin:1rem 0}
.tile{background:#fff;border-radius:8px;padding:1rem;box-shadow:0 1px 3px #0002}
.tile .value{font-size:1.8rem;font-weight:600}.tile .label{color:#5a6b7d;font-size:.9rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:1rem}
.card{background:#fff;border-radius:8px;padding:.5rem;box-shadow:0 1px 3px #0002}
.card h3{font-size:1rem;margin:.5rem .75rem 0}
.empty{color:#5a6b7d;padding:2rem;text-align:center}.note{color:#5a6b7d;font-size:.85rem}
"""


def slug(text: str) -> str:
    """Return a file-name part made of text: lower-case letters and digits joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "clinic"
