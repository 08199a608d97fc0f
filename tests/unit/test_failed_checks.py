"""A host whose agent ended well but one of whose checks could not run is a problem line (exit
1), not `ok` (issue 18, defect 4: the engine killed under `disk` gave exit 0, problems [])."""

from __future__ import annotations

from labctl.pipeline import failed_checks


def test_a_check_that_could_not_run_is_one_line_naming_host_and_check() -> None:
    result = {
        "host": "bookworm",
        "status": "ok",
        "experiments": [
            {"name": "storage-location", "status": "ok", "verdict": "in the host's tree"},
            {"name": "disk", "status": "error", "verdict": "error: x",
             "error": {"kind": "docker-run", "message": "Cannot connect to the Docker daemon"}},
            {"name": "memory", "status": "error", "verdict": "error: the agent crashed"},
            {"name": "drivers-available", "status": "skipped", "verdict": "needs root"},
        ],
    }  # fmt: skip
    assert failed_checks(result) == [
        "bookworm: the disk check could not run: Cannot connect to the Docker daemon",
        "bookworm: the memory check could not run: error: the agent crashed",
    ]


def test_a_failed_host_says_it_itself_and_odd_records_are_ignored() -> None:
    assert (
        failed_checks({"host": "h", "status": "error", "experiments": [{"status": "error"}]}) == []
    )
    assert failed_checks({"host": "h", "status": "ok", "experiments": ["x", None]}) == []
    assert failed_checks({}) == []
