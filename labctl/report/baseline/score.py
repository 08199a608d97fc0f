"""Scoring: how close one host is to one of the article's systems, one named function per
criterion (:data:`CRITERIA`), each giving its points, its verdict and the words that explain it.

The criteria and their weights (:data:`~.model.WEIGHTS`): the engine (Docker 1.5.0 scores
highest, a 1.x engine of the same era less); the storage driver (the same, or a stand-in:
overlay for aufs; a host on neither is no partner at all); the daemon's mount namespace,
measured, else expected from the init style asked for (what tells CentOS 7.0's finding from
6.6's); then the distribution family, its version and the kernel line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..samekernel import version_tuple
from .load import Profile, kernel_line, major
from .model import (
    DIFFERS,
    FAMILY_NAMES,
    MATCH,
    PARTIAL,
    UNKNOWN,
    WEIGHTS,
    Base,
    Candidate,
    Criterion,
    System,
)


def stand_in(system: System, driver: str | None) -> str | None:
    """The data's sentence when ``driver`` stands in for the system's driver, else None."""
    text = (system.get("stand_ins") or {}).get(driver or "")
    return str(text) if text else None


def ns_words(ns: str) -> str:
    return "a private mount namespace" if ns == "private" else "the host's mount namespace"


def expected_ns(p: Profile, base: Base) -> str | None:
    """The namespace the asked-for init style gives (systemd's MountFlags only before 1.12)."""
    style = (base.get("init_styles") or {}).get(p.init or "")
    if not style:
        return None
    if p.init == "systemd" and p.engine and version_tuple(p.engine) >= (1, 12):
        return "host"
    return str(style["mount_namespace"])


def _criterion(name: str, points: int, verdict: str, text: str) -> Criterion:
    return Criterion(name, points, WEIGHTS[name], verdict, text)


def engine(p: Profile, system: System, base: Base) -> Criterion:
    article = str(base["docker"]["version"])
    if not p.engine:
        return _criterion("engine", 0, UNKNOWN, "Docker version unknown")
    if version_tuple(p.engine)[:2] == version_tuple(article)[:2]:
        return _criterion("engine", WEIGHTS["engine"], MATCH, f"Docker {p.engine}")
    if version_tuple(p.engine) < (1, 11):
        return _criterion("engine", 1, PARTIAL, f"Docker {p.engine} (same era as {article})")
    return _criterion("engine", 0, DIFFERS, f"Docker {p.engine}, not {article}")


def storage_driver(p: Profile, system: System, base: Base) -> Criterion:
    name, sd = "storage driver", str(system["storage_driver"])
    instead = stand_in(system, p.driver)
    if p.driver == sd:
        return _criterion(name, WEIGHTS[name], MATCH, sd)
    if instead:
        return _criterion(name, 3, PARTIAL, instead.split(":")[0])
    if p.driver:
        return _criterion(name, 0, DIFFERS, f"storage driver {p.driver}, not {sd}")
    return _criterion(name, 0, UNKNOWN, "storage driver unknown")


def mount_namespace(p: Profile, system: System, base: Base) -> Criterion:
    """The daemon's mount namespace as measured, else as the init style asked for gives it."""
    name = "daemon mount namespace"
    sys_ns = str(system.get("daemon_mount_namespace") or "")
    expected = expected_ns(p, base)
    if p.mount_ns and sys_ns:
        if p.mount_ns != sys_ns:
            return _criterion(
                name, 0, DIFFERS, f"daemon in {ns_words(p.mount_ns)}, not {ns_words(sys_ns)}"
            )
        style = ((base.get("init_styles") or {}).get(p.init or "") or {}).get("text")
        how = f" ({style})" if style and expected == p.mount_ns else ""
        bonus = 1 if p.init == system.get("init") else 0
        return _criterion(name, 3 + bonus, MATCH, f"daemon in {ns_words(p.mount_ns)}{how}")
    if expected and sys_ns:
        said = f"{p.init} init: daemon expected in {ns_words(expected)}"
        if expected == sys_ns:
            return _criterion(name, 1, PARTIAL, f"{said} (asked, not measured)")
        return _criterion(name, 0, DIFFERS, f"{said}, not {ns_words(sys_ns)} (asked, not measured)")
    return _criterion(name, 0, UNKNOWN, "daemon mount namespace not measured")


def _variant(p: Profile, system: System, base: Base) -> dict[str, Any] | None:
    """A variant of another system that the data says behaves like ``system`` on this host's
    driver (e.g. Ubuntu with devicemapper behaving like CentOS 7.0)."""
    return next(
        (
            v
            for s in base["systems"]
            for v in s.get("variants", [])
            if v["behaves_like"] == system["id"]
            and v["storage_driver"] == p.driver
            and s["family"] == p.family
            and major(s["version"]) == major(p.version)
        ),
        None,
    )


def family(p: Profile, system: System, base: Base) -> Criterion:
    fam = str(system["family"])
    fam_name = FAMILY_NAMES.get(fam, fam)
    if p.family == fam:
        return _criterion("family", WEIGHTS["family"], MATCH, f"{fam_name} family")
    host_fam = FAMILY_NAMES.get(p.family or "", p.family or "unknown")
    variant = _variant(p, system, base)
    if variant:
        return _criterion("family", 1, PARTIAL, f"{host_fam} family ({variant['note']})")
    return _criterion("family", 0, DIFFERS, f"{host_fam}, not {fam_name}")


def distribution_version(p: Profile, system: System, base: Base) -> Criterion:
    name = "distribution version"
    if p.family != system["family"]:
        return _criterion(name, 0, UNKNOWN, "")
    if major(p.version) == major(system["version"]):
        return _criterion(name, WEIGHTS[name], MATCH, p.pretty)
    return _criterion(
        name, 0, DIFFERS, f"version {p.version or 'unknown'}, not {system['version']}"
    )


def kernel(p: Profile, system: System, base: Base) -> Criterion:
    kl, akl = kernel_line(p.kernel), kernel_line(system["kernel"])
    if kl and kl == akl:
        return _criterion("kernel line", WEIGHTS["kernel line"], MATCH, f"kernel {kl} line")
    return _criterion("kernel line", 0, DIFFERS, f"kernel {kl or 'unknown'}, not {akl}")


#: every criterion, in the order its words are shown
CRITERIA: tuple[Callable[[Profile, System, Base], Criterion], ...] = (
    engine,
    storage_driver,
    mount_namespace,
    family,
    distribution_version,
    kernel,
)


def score(p: Profile, system: System, base: Base) -> Candidate:
    """How close one host is to one system: every criterion. A reasonable partner was probed
    and runs the system's storage driver or a stand-in for it."""
    crit = [criterion(p, system, base) for criterion in CRITERIA]
    by_name = {c.name: c for c in crit}
    eligible = p.probed and by_name["storage driver"].points > 0
    return Candidate(p.host, sum(c.points for c in crit), sum(WEIGHTS.values()), eligible, crit)
