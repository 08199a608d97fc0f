"""labctl installs like any Python tool (issue 19): the wheel carries every file labctl reads at
run time (the package's own files, the playbooks and roles, the example inventories), found
where labctl's own functions look for them; ``python -m labctl`` is the ``labctl`` command."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import metadata, resources
from pathlib import Path

import pytest

from labctl import __version__, agentpack, paths
from labctl.ansible import list_inventory
from labctl.drivers.docker import images as docker_images
from labctl.drivers.qemu import images as qemu_images
from labctl.engines import buildimage, patchset
from labctl.errors import InventoryError
from tests.helpers import CHECKOUT

#: the checkout's folders the wheel carries, and where they land in it (pyproject.toml's
#: package-dir; labctl/paths.py's data_dir looks for the last two there)
SHIPPED = {
    "labctl": "labctl",
    "playbooks": "labctl/_data/playbooks",
    "inventories": "labctl/_data/inventories",
}


def _files_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )  # fmt: skip


def _name_in_wheel(path: Path) -> str:
    rel = path.resolve().relative_to(CHECKOUT)
    return "/".join([SHIPPED[rel.parts[0]], *rel.parts[1:]])


def _run_time_folders(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders labctl reads files from at run time, asked of labctl itself."""
    monkeypatch.delenv("LABCTL_PLAYBOOKS", raising=False)
    return [
        paths.playbooks_dir(),
        paths.collection_dir(),  # the roles, their argument specs (--help-vars reads them)
        paths.inventories_dir(),
        agentpack.AGENT_DIR,
        docker_images.image_files_dir(),
        qemu_images.image_files_dir(),
        patchset.patches_root(),
        buildimage.scripts_dir(),
        Path(str(resources.files("labctl") / "templates")),  # the report's jinja2 PackageLoader
        Path(str(resources.files("labctl.report.baseline"))),  # article.json
    ]


def test_every_file_labctl_reads_at_run_time_is_in_the_wheel(
    built_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = set(zipfile.ZipFile(built_wheel).namelist())
    folders = _run_time_folders(monkeypatch)
    for folder in folders:  # each one inside a folder the wheel maps (else the map is short)
        assert folder.resolve().relative_to(CHECKOUT).parts[0] in SHIPPED, folder
        assert _files_under(folder), f"{folder}: no files (did it move?)"
    wanted = [p for top in SHIPPED for p in _files_under(CHECKOUT / top)]
    assert "labctl/_data/playbooks/site.yml" in {_name_in_wheel(p) for p in wanted}
    missing = [_name_in_wheel(p) for p in wanted if _name_in_wheel(p) not in names]
    assert missing == [], f"not in the wheel (pyproject.toml's packages, package-data): {missing}"
    # nothing at the top level but the package and its metadata (no stray playbooks/ package)
    tops = {n.split("/")[0] for n in names}
    assert tops == {"labctl", f"labctl-{metadata.version('labctl')}.dist-info"}, tops


def test_python_m_labctl_is_the_labctl_command_with_the_distribution_version() -> None:
    assert __version__ == metadata.version("labctl")
    proc = subprocess.run(
        [sys.executable, "-m", "labctl", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"labctl, version {__version__}"


def test_a_missing_inventory_names_the_shipped_examples(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as err:
        list_inventory(tmp_path / "article.ini")
    examples = paths.inventories_dir()
    assert (examples / "article.ini").is_file() and (examples / "example.ini").is_file()
    assert f"examples to copy and fill in: {examples}" in err.value.line()
