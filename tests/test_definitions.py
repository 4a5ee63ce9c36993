"""The Definitions the UI loads: a rename or a lost asset, check, job, schedule or sensor shows as a diff."""

from __future__ import annotations

from pathlib import Path

from pipelines.definitions import defs

SNAPSHOT = Path(__file__).parent / "fixtures" / "definitions.txt"


def definitions_listing() -> list[str]:
    graph = defs.resolve_asset_graph()
    lines = [f"asset {key.to_user_string()}" for key in graph.get_all_asset_keys()]
    lines += [f"check {key.asset_key.to_user_string()}:{key.name}" for key in graph.asset_check_keys]
    lines += [f"job {job.name}" for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    lines += [f"schedule {s.name} {s.cron_schedule} {s.execution_timezone}" for s in defs.schedules]
    lines += [f"sensor {s.name}" for s in defs.sensors]
    return sorted(lines)


def test_definitions_match_the_stored_listing():
    # To accept an intended change: python -c "from tests.test_definitions import *; write_snapshot()"
    assert definitions_listing() == SNAPSHOT.read_text().splitlines()


def test_every_asset_has_a_description_and_a_group():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.group_name != "default", key


def test_assets_are_grouped_by_layer():
    graph = defs.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {"raw", "seeds", "quarantine", "staging", "intermediate", "marts", "reports", "publication"}


def write_snapshot() -> None:
    SNAPSHOT.write_text("\n".join(definitions_listing()) + "\n")
