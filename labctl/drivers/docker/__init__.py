"""The docker driver: lab hosts as containers (Docker-in-Docker) on the controller's kernel.

``spec`` (what a lab looks like), ``images`` (the lab host images), ``containers`` (the Docker
engine side), ``lab`` (``DockerLab``: up, status, down).
"""

from .lab import DockerLab
from .spec import DockerLabSpec, HostSpec

__all__ = ["DockerLab", "DockerLabSpec", "HostSpec"]
