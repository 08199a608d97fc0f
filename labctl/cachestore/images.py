"""The Docker images labctl builds and tags, judged by the tags today's recipes would have.

Lab host images are ``labctl-host:<name>-<hash12>`` (``Recipe.tag``, docker/images.py), the
engine build image ``labctl-engine-build:<suite>-<hash12>`` (engines/buildimage.py); a tag of
those repositories that no recipe of this labctl names is stale. An image any container uses
(running or stopped: a lab's host) is in use; the engine would refuse to remove it anyway.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from ..drivers.docker import images as labimages
from ..drivers.docker.containers import LABEL_LAB
from ..engines import buildimage
from ..errors import ConfigError
from .model import CURRENT, STALE, CacheItem, keyed_name

REPOSITORIES: dict[str, str] = {
    labimages.IMAGE_REPOSITORY: "lab-image",
    buildimage.IMAGE_REPOSITORY: "engine-build-image",
}


def current_lab_tags() -> dict[str, str]:
    """Tag -> recipe name, for every image ``recipe_for`` makes (suite x docker x python)."""
    tags = {}
    for suite, docker, python in itertools.product(
        labimages.SUITES, (True, False), labimages.PYTHONS
    ):
        try:
            recipe = labimages.recipe_for(suite, docker=docker, python=python)
        except ConfigError:  # e.g. python2.7 where the suite has none
            continue
        tags[recipe.tag] = recipe.name
    return tags


def current_tags() -> dict[str, str]:
    build = buildimage.build_image_recipe()
    return {**current_lab_tags(), build.tag: f"engine build ({build.suite})"}


def image_users(containers: Iterable[Any]) -> dict[str, str]:
    """Image id -> who uses it: the first container made from it (its lab, when labelled)."""
    users: dict[str, str] = {}
    for c in containers:
        image_id = (c.attrs or {}).get("Image", "")
        lab = (c.labels or {}).get(LABEL_LAB)
        who = f"lab {lab} (container {c.name})" if lab else f"container {c.name}"
        if image_id:
            users.setdefault(image_id, who)
    return users


def _name_of(tag: str) -> str:
    rest = tag.partition(":")[2]
    key = keyed_name(rest)
    return key[0] if key else rest


def judge_tag(tag: str, current: dict[str, str]) -> tuple[str, str]:
    """(state, why) of one tag of labctl's repositories."""
    if tag in current:
        return CURRENT, f"today's {current[tag]} recipe"
    repo = tag.partition(":")[0]
    name = _name_of(tag)
    same = [t for t in current if t.partition(":")[0] == repo and _name_of(t) == name]
    if same:
        return STALE, f"an older {name} recipe (today's: {same[0].rsplit('-', 1)[-1]})"
    return STALE, f"no recipe of this labctl makes {name}"


def image_items(client: Any) -> list[CacheItem]:
    """One item per tag of labctl's repositories on the engine ``client`` talks to."""
    current = current_tags()
    users = image_users(client.containers.list(all=True))
    out = []
    for repo, kind in REPOSITORIES.items():
        for image in client.images.list(name=repo):
            for tag in image.tags:
                if not tag.startswith(f"{repo}:"):
                    continue
                state, why = judge_tag(tag, current)
                out.append(
                    CacheItem(
                        kind,
                        tag,
                        int(image.attrs.get("Size") or 0),
                        state,
                        why,
                        in_use=users.get(image.id, ""),
                        tag=tag,
                        image_id=image.id,
                    )
                )
    return out
