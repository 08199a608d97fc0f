"""The qemu driver: lab hosts as QEMU VMs, each running its Debian suite's own kernel.

``spec`` (what a lab looks like, presets), ``images`` (the VM disk images), ``vm`` (command
lines, accelerator, processes), ``lab`` (``QemuLab``: up, status, down).
"""

from labctl.drivers.qemu.lab import QemuLab
from labctl.drivers.qemu.spec import QemuHostSpec, QemuLabSpec

__all__ = ["QemuHostSpec", "QemuLab", "QemuLabSpec"]
