"""The qemu driver: lab hosts as QEMU VMs, each running its Debian suite's own kernel.

``spec`` (what a lab looks like, presets), ``images`` (the VM disk images), ``vm`` (command
lines, accelerator, processes), ``lab`` (``QemuLab``: up, status, down).
"""

from .lab import QemuLab
from .spec import QemuHostSpec, QemuLabSpec

__all__ = ["QemuHostSpec", "QemuLab", "QemuLabSpec"]
