"""The lab drivers by name, and the one way to build a lab from command-line options.

Layout: ``base`` (the ``LabDriver`` class every driver implements, and what they share: the lab's
folder and key, sizes, host records and inventory, the end of ``up()``, ``DownReport``,
``HostStatus``), ``debootstrap`` (what every locally built Debian image shares: the recipe base,
debootstrap, the mirror), and one subpackage per driver (``docker/``, ``qemu/``: spec, images,
the hosts' lifecycle). Later stages get only ``HostRecord``s and the inventory from a driver.

Adding a driver (say ``libvirt``): a subpackage ``labctl/drivers/libvirt/`` with a ``LabDriver``
subclass (``name``, ``options``, ``from_options()``, ``up()``, ``status()``, ``down()``; the
base's helpers make the lab folder, host records and inventory), and one line in ``DRIVERS``
below (naming its presets, if any, so the command line lists them without loading a driver).
Then ``labctl lab up|status|down --driver libvirt`` and ``labctl run --driver libvirt`` work; a
new command-line option also needs its click option in ``cli.py``.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..hosts import Progress
from .base import LabDriver, option_flag, recorded_driver


class Entry(NamedTuple):
    #: the driver's class, "module:Class" (imported when a lab of the driver is made)
    cls: str
    #: what its hosts are (`--driver`'s help)
    what: str
    #: the `--preset` names it brings (its class's ``presets``)
    presets: tuple[str, ...] = ()


DRIVERS: dict[str, Entry] = {
    "docker": Entry("labctl.drivers.docker:DockerLab", "hosts as containers"),
    "qemu": Entry("labctl.drivers.qemu:QemuLab", "VMs with their own kernels", ("article",)),
}
#: the driver of a lab that names none and was not made before
DEFAULT_DRIVER = "docker"


def driver_names() -> list[str]:
    return list(DRIVERS)


def driver_help() -> str:
    """One line for `--driver`: each driver and what its hosts are."""
    kinds = "; ".join(f"{name}: {e.what}" for name, e in DRIVERS.items())
    return f"{kinds} [the lab's, else {DEFAULT_DRIVER}]."


def driver_class(name: str) -> type[LabDriver]:
    """The class of driver ``name``; an unknown name is a ConfigError."""
    if name not in DRIVERS:
        raise ConfigError(f"unknown driver {name!r}", hint=f"choose from {', '.join(DRIVERS)}")
    module, _, attr = DRIVERS[name].cls.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert isinstance(cls, type) and issubclass(cls, LabDriver)
    return cls


def preset_names() -> list[str]:
    return [p for e in DRIVERS.values() for p in e.presets]


def _preset_driver(preset: str) -> type[LabDriver]:
    for name, e in DRIVERS.items():
        if preset in e.presets:
            return driver_class(name)
    raise ConfigError(f"unknown preset {preset!r}", hint=f"choose from {', '.join(preset_names())}")


def make_lab(
    name: str,
    *,
    driver: str | None = None,
    preset: str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> LabDriver:
    """Lab ``name`` from command-line options (None or () = not given): with ``driver``, else the
    driver that made the lab, else the default; or a driver's preset."""
    given = {k: v for k, v in options.items() if v is not None and v != ()}
    if preset:
        cls = _preset_driver(preset)
        others = [option_flag(k) for k in given if k not in cls.preset_options]
        if driver not in (None, cls.name):
            others.insert(0, "--driver")
        if others:
            raise ConfigError(
                f"--preset {preset} brings its own {cls.name} hosts: "
                f"{', '.join(others)} cannot change them",
                hint="drop those options, or drop --preset and give --host SUITE:key=value,...",
            )
        return cls.from_options(name, given, preset=preset, progress=progress)
    cls = driver_class(driver or recorded_driver(name) or DEFAULT_DRIVER)
    foreign = [k for k in given if k not in cls.options]
    if foreign:
        flags = ", ".join(option_flag(k) for k in foreign)
        owners = [n for n in DRIVERS if set(foreign) <= driver_class(n).options]
        if owners:
            raise ConfigError(
                f"{flags}: {' or '.join(owners)} lab options, not {cls.name} ones",
                hint=f"add --driver {owners[0]}" if driver is None else f"drop {flags}",
            )
        raise ConfigError(f"{flags}: not options of the {cls.name} driver")
    return cls.from_options(name, given, progress=progress)
