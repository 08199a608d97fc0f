"""`--set NAME=VALUE` is checked by the agent's own parser on the controller, before anything
connects (issue 18, defect 9: a bad value connected, pushed and failed on the host, the last one
with the agent's OverflowError)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from labctl.cli import main


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("disk_floor_bytes=-5G", "disk_floor_bytes needs a size like 512M or 1G, got '-5G'"),
        ("disk_flor_bytes=5G", "unknown limit 'disk_flor_bytes'; known: disk_cap_bytes"),
        ("disk_cap_bytes=" + "9" * 60000, "is too long to be a value"),
        ("disk_cap_bytes", "--set 'disk_cap_bytes' is not NAME=VALUE"),
    ],
)
def test_a_bad_set_is_exit_2_before_anything_connects(item: str, said: str, tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h1 ansible_host=127.0.0.1 ansible_port=9\n")  # never reached
    res = CliRunner().invoke(main, ["probe", "-i", str(inventory), "--set", item])
    assert res.exit_code == 2, res.output
    assert said in res.output
    assert "Traceback" not in res.output and "OverflowError" not in res.output
