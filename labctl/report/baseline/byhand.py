"""The claims the article's authors settled by hand, and the checks that redo them: the CentOS
7.0 hand mount (storage-host-mount) and switching the storage driver (storage-driver-switch)."""

from __future__ import annotations

from typing import Any

from ..model import HostEntry
from .load import engine_driver
from .model import CONTRADICTED, NOT_SETTLED, REPRODUCED
from .ruleset import Outcome, Run, evidence, kernel_of, metric

CHECK = "storage-host-mount"
#: the check's steps as the article tells them on CentOS 7.0 (read yes, write no, read after the
#: container wrote no, read after a remount yes): the metric, the article's value, the step in
#: words as the article saw it and otherwise
HAND_MOUNT_STEPS: tuple[tuple[str, bool, str, str], ...] = (
    ("read_before_ok", True, "the host reads the container's files",
     "the host cannot read the container's files"),
    ("write_ok", False, "the host's write fails", "the host's write succeeds"),
    ("read_after_container_wrote_ok", False,
     "once the container writes, the host's reads of what it wrote fail",
     "the host reads what the container wrote"),
    ("read_after_remount_ok", True, "a remount makes them readable",
     "a remount does not make them readable"),
)  # fmt: skip


def _hand_mount_host(claim: dict[str, Any], run: Run) -> HostEntry | None:
    """The partner of ``claim["system"]`` if it ran the check, else any 1.5.0 device-mapper
    host that did (the second device is the host's own mount: the daemon's namespace plays no
    part)."""
    e = run.partners.get(claim["system"])
    if e is not None and metric(e, CHECK, "mount_ok"):
        return e
    return next(
        (h for h in run.engines_1_5()
         if engine_driver(h) == "devicemapper" and metric(h, CHECK, "mount_ok")),
        None,
    )  # fmt: skip


def _read_cause(h: HostEntry) -> str:
    """Why reads fail after the container writes, from the step that drops the host's caches."""
    if metric(h, CHECK, "read_after_container_wrote_ok"):
        return ""
    if metric(h, CHECK, "read_after_drop_caches_ok"):
        return ("the host's mount reads from its own page cache; dropping it (drop_caches) is "
                "enough")  # fmt: skip
    return (
        "the host's mount keeps its own copy of the filesystem's directories: dropping the "
        "host's caches does not help, only a remount reads what the container wrote"
    )


def hand_mount(claim: dict[str, Any], run: Run) -> Outcome:
    """The container's thin volume mounted a second time by hand (storage-host-mount): each
    step against the article's; the cause of the reads' failure from the run itself, and for a
    step that differs, what differs from the article's host (``claim["era_host"]``)."""
    h = _hand_mount_host(claim, run)
    if h is None:
        return NOT_SETTLED, [], [], f"needs the {CHECK} check on a 1.5.0 device-mapper host"
    keys = [k for k, *_words in HAND_MOUNT_STEPS]
    keys += ["container_sees_write", "read_after_drop_caches_ok", "journal_replayed"]
    got = {k: metric(h, CHECK, k) for k in keys}
    ev = [evidence(h, f"{CHECK}.{k}", v) for k, v in got.items()]
    same = [said for k, want, said, _other in HAND_MOUNT_STEPS if bool(got[k]) is want]
    differ = [other for k, want, _said, other in HAND_MOUNT_STEPS if bool(got[k]) is not want]
    notes = [f"as the article: {', '.join(same)}"] if same else []
    cause = _read_cause(h)
    if cause:
        notes.append(f"why: {cause}")
    if got["journal_replayed"]:
        notes.append("mounting replayed the journal of the container's live filesystem")
    if not differ:
        return REPRODUCED, [h.name], ev, "; ".join(notes)
    said = "not so here: " + ", ".join(differ)
    if got["write_ok"] and not got["container_sees_write"]:
        said += " (the container never sees it: two mounts, two caches of one filesystem)"
    kernel = kernel_of(h) or "unknown"
    era = f" (kernel {kernel} here; {claim['era_host']})" if claim.get("era_host") else ""
    return CONTRADICTED, [h.name], ev, "; ".join([said + (era or f" (kernel {kernel})"), *notes])


def driver_switch(claim: dict[str, Any], run: Run) -> Outcome:
    """A container made under one storage driver is unusable once the engine runs another, and
    the article's remedy (export, delete the root, start, import) gives its files back: on
    every 1.5.0 host that ran storage-driver-switch (what happens depends on the engine)."""
    check = "storage-driver-switch"
    hosts = [e for e in run.engines_1_5() if metric(e, check, "second_driver")]
    if not hosts:
        return NOT_SETTLED, [], [], f"needs the {check} check on a Docker 1.5.0 host"
    keys = ("container_listed_after_switch", "container_starts_after_switch",
            "image_listed_after_switch", "restored_reads_file")  # fmt: skip
    ev, wrong, seen = [], [], []
    for e in hosts:
        got = {k: metric(e, check, k) for k in keys}
        ev += [evidence(e, f"{check}.{k}", v) for k, v in got.items()]
        switched = f"{metric(e, check, 'first_driver')} to {metric(e, check, 'second_driver')}"
        if got["container_listed_after_switch"] and got["container_starts_after_switch"]:
            wrong.append(f"{e.name}: the container is still usable after the switch")
        else:
            fate = "is listed but does not start" if got["container_listed_after_switch"] else (
                "is no longer listed")  # fmt: skip
            image = "is still listed" if got["image_listed_after_switch"] else "is gone too"
            seen.append(f"{e.name} ({switched}): the container {fate}, its image {image}")
        if got["restored_reads_file"]:
            seen.append(f"{e.name}: export, delete the root, start and import give its file back")
        else:
            error = metric(e, check, "restore_error")
            wrong.append(f"{e.name}: the remedy did not give the file back ({error})")
    names = [e.name for e in hosts]
    if wrong:
        return CONTRADICTED, names, ev, "; ".join(wrong + seen)
    return REPRODUCED, names, ev, "; ".join(seen)
