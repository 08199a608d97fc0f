"""The controller's connection to its Docker engine (lab hosts and engine builds run there)."""

from __future__ import annotations

from typing import Any

from .errors import LabError


def connect(what: str = "") -> Any:
    """A docker SDK client that has answered a ping; else one line saying how to get one."""
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # DockerException, requests errors, socket errors
        raise LabError(
            f"cannot reach the Docker engine ({exc}){'; ' + what if what else ''}",
            hint="start it (e.g. `dockerd`) or set DOCKER_HOST",
        ) from exc
    return client
