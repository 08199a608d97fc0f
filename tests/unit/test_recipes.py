"""The three kinds of image recipes share one base (labctl/drivers/debootstrap.py) and keep the
digests they had before it: the image caches (labctl-host:* images, VM disks, the engine build
image) are named by them, so a changed digest means rebuilding every image (minutes each).

The pinned names were computed before the shared base existed, with fixed file contents (so a
change to a baked-in file does not touch them; a change to a recipe's packages, steps or
version does, and then the pin moves on purpose)."""

from __future__ import annotations

import pytest

import labctl.drivers.docker.images as images
import labctl.drivers.qemu.images as vmimages
from labctl.debootstrap import ImageRecipe
from labctl.engines import buildimage


def _files(names: object) -> dict[str, bytes]:
    assert isinstance(names, dict)
    return {n: f"file {n}".encode() for n in names}


@pytest.mark.parametrize(
    ("suite", "docker", "python", "tag"),
    [
        ("bookworm", True, "python3", "labctl-host:bookworm-5388037634b6"),
        ("bullseye", True, "python2.7", "labctl-host:bullseye-py27-5e1e91cd8d28"),
        ("trixie", False, "none", "labctl-host:trixie-nodocker-nopython-e16602147bb4"),
    ],
)
def test_lab_host_image_tags_are_unchanged(suite: str, docker: bool, python: str, tag: str) -> None:
    r = images.recipe_for(suite, docker=docker, python=python, files=_files(images.IMAGE_FILES))
    assert isinstance(r, ImageRecipe)
    assert r.tag == tag


@pytest.mark.parametrize(
    ("suite", "folder"),
    [
        ("bullseye", "bullseye-9da4be081c6e"),
        ("bookworm", "bookworm-cc8db64819f6"),
        ("trixie", "trixie-e7d74a364eb9"),
    ],
)
def test_vm_image_folders_are_unchanged(suite: str, folder: str) -> None:
    # moved on purpose by the lean VM boot (issue 12): recipe version 2, new units and masks,
    # then fewer early units and generators, and some after sshd; sshd-keygen.service masked
    # (trixie's, in an ordering cycle with those after sshd: issue 18)
    r = vmimages.vm_recipe_for(suite, files=_files(vmimages.VM_IMAGE_FILES))
    assert isinstance(r, ImageRecipe)
    assert r.directory.name == folder


def test_engine_build_image_tag_is_unchanged() -> None:
    r = buildimage.build_image_recipe(files=_files(buildimage.IMAGE_FILES))
    assert isinstance(r, ImageRecipe)
    assert r.tag == "labctl-engine-build:bookworm-f99f2d19124e"


def test_short_hash_and_tag_come_from_the_digest() -> None:
    r = buildimage.build_image_recipe(files=_files(buildimage.IMAGE_FILES))
    assert r.short_hash == r.digest[:12] and len(r.digest) == 64
    assert r.tag == f"{buildimage.IMAGE_REPOSITORY}:{r.suite}-{r.short_hash}"
