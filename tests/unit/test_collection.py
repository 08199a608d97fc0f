"""The roles as the Ansible collection labctl.lab (issue 19): its argument specs are the one
place the roles' options are written (defaults/main.yml must agree, --help-vars prints them),
the collection builds and installs with ansible-galaxy, ansible-doc shows every option, and a
play's values are checked against the specs before the first task."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.paths import COLLECTION
from labctl.provision_vars import SET_BY_LABCTL, role_options, role_variables
from tests.helpers import ROLES, ansible_tool, install_collection


def _ansible(tool: str, *args: str, collections: Path) -> str:
    proc = ansible_tool(tool, *args, collections=collections)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _specs(role: str) -> dict[str, Any]:
    data = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    specs: dict[str, Any] = data["argument_specs"]
    return specs


def test_every_role_default_is_its_argument_spec_default() -> None:
    """defaults/main.yml and meta/argument_specs.yml name the same variables with the same
    values; a default computed per host (a template) has none in the spec, its description says
    it instead; a required option has no default at all."""
    for role in sorted(p.name for p in ROLES.iterdir()):
        defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}
        options: dict[str, Any] = {}
        for entry in _specs(role).values():
            options.update(entry["options"])
        assert set(defaults) <= set(options), (role, set(defaults) - set(options))
        for name, spec in options.items():
            if spec.get("required"):
                assert name not in defaults and "default" not in spec, (role, name)
            elif "{{" in str(defaults[name]):
                assert "default" not in spec and "default" in spec["description"][0], name
            else:
                assert spec["default"] == defaults[name], (role, name)


def test_help_vars_prints_the_roles_options_from_their_specs() -> None:
    res = CliRunner().invoke(main, ["provision", "--help-vars"])
    assert res.exit_code == 0, res.output
    listed = {line.split()[0]: line for line in res.output.splitlines()[1:]}
    shown = 0
    for role in ("docker_engine", "docker_storage", "labctl_facts"):
        for name, spec in role_options(role).items():
            assert name in listed, f"{name} ({role}) missing from --help-vars"
            assert " ".join(spec["description"][0].split()) in listed[name]
            shown += 1
    assert "labctl_warm_enabled" in listed and not SET_BY_LABCTL & set(listed)
    assert listed["docker_engine_method"].split()[1] == "distro"
    assert listed["docker_storage_opts"].split()[1] == "[]"
    assert len(role_variables()) == shown + 2  # with labctl_warm_enabled and labctl_warm_stamp


def test_help_vars_without_the_collection_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LABCTL_PLAYBOOKS copy of the old layout (roles/, no collections/): one line saying so."""
    (tmp_path / "site.yml").write_text("---\n")
    monkeypatch.setenv("LABCTL_PLAYBOOKS", str(tmp_path))
    res = CliRunner().invoke(main, ["provision", "--help-vars"])
    assert res.exit_code == 6, res.output
    assert "cannot read the role options in" in res.output and "Traceback" not in res.output
    assert "a LABCTL_PLAYBOOKS copy needs its collections/ folder" in res.output


def test_preflight_refuses_what_the_specs_do_not_offer() -> None:
    from labctl.hosts import HostRecord
    from labctl.provision_vars import preflight

    assert role_options("docker_engine")["docker_engine_method"]["choices"] == ["distro", "binary"]
    bad = HostRecord("h", "127.0.0.1", vars={"docker_engine_method": "tarball"})
    assert preflight(bad) == ["docker_engine_method: distro or binary, not 'tarball'"]
    style = HostRecord("h", "127.0.0.1", vars={"docker_engine_service_manager": "systemv"})
    (said,) = preflight(style)
    assert said.startswith("docker_engine_service_manager: auto or systemd or "), said
    assert said.endswith(" or labctl, not 'systemv'"), said
    ok = {"docker_engine_service_manager": "sysvinit-epel", "docker_storage_config": "sysconfig"}
    assert preflight(HostRecord("h", "127.0.0.1", vars=ok)) == []


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_collection(tmp_path_factory.mktemp("collection"))


def test_ansible_doc_shows_the_documented_options_of_the_installed_roles(installed: Path) -> None:
    text = _ansible("ansible-doc", "-t", "role", f"{COLLECTION}.docker_engine",
                    collections=installed)  # fmt: skip
    for name in role_options("docker_engine"):
        assert name in text, name
    assert "sysvinit-epel" in text and "choices" in text
    doc = json.loads(_ansible("ansible-doc", "-t", "role", "-j", f"{COLLECTION}.docker_engine",
                              collections=installed))  # fmt: skip
    options = doc[f"{COLLECTION}.docker_engine"]["entry_points"]["main"]["options"]
    assert options == _specs("docker_engine")["main"]["options"]
    listed = _ansible("ansible-doc", "-t", "role", "-l", COLLECTION, collections=installed)
    for role in ("docker_engine", "docker_storage", "labctl_facts", "labctl_warm"):
        assert f"{COLLECTION}.{role}" in listed, listed


def _play(tmp: Path, installed: Path, play: str) -> subprocess.CompletedProcess[str]:
    (tmp / "play.yml").write_text(play)
    return ansible_tool("ansible-playbook", "-i", "localhost,", "-c", "local", "play.yml",
                        collections=installed, cwd=tmp)  # fmt: skip


def test_the_installed_roles_check_a_plays_values_before_any_task(
    installed: Path, tmp_path: Path
) -> None:
    """labctl_warm's check entry point (no dependency runs before it): a value that is no bool
    and a missing fingerprint fail the argument validation, naming the option; nothing ran."""
    play = (
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        f"    - {{ansible.builtin.include_role: {{name: {COLLECTION}.labctl_warm,"
        " tasks_from: check}}\n"
    )
    bad = _play(
        tmp_path, installed, play.replace("tasks:", "vars: {labctl_warm_enabled: maybe}\n  tasks:")
    )
    assert bad.returncode != 0
    assert "Validating arguments against arg spec 'check'" in bad.stdout, bad.stdout
    assert "labctl_warm_fingerprint" in bad.stdout and "labctl_warm_enabled" in bad.stdout
    assert "Check whether this host is warm" not in bad.stdout
