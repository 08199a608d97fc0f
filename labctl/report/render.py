"""The report's documents: report.md and report.html from jinja2 templates
(``labctl/templates``, autoescaped), and the JSON document of report.json.

The templates get a plain view (dicts and lists of strings, built here), so they hold layout
only. The HTML is self-contained: CSS inline, plots embedded as base64 PNG. Nothing is written
here: :mod:`labctl.report.build` writes the files.

The HTML stays small on big runs (a few MiB at 1,000 hosts): a matrix cell carries its whole
verdict as a tooltip only up to :data:`TOOLTIP_HOSTS` hosts, and "Verdicts in full" shows each
distinct verdict once with the hosts that share it, up to :data:`DETAIL_ROWS` of them per
experiment (report.md and verdicts.csv keep every host's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jinja2

from .. import __version__
from .baseline import compare_to_baseline, files_in_tree, mount_namespace
from .classify import CLASSES, LABELS, LANDED_RATIO, RULES, short_verdict, unit_of
from .matrix import asked_mismatches, column_label, format_value
from .model import HostEntry, ReportData, data_uri, dig, plot_file, redact_ids

REPORT_SCHEMA = 1
#: the HTML matrix's cells carry the whole verdict as a tooltip up to this many hosts
TOOLTIP_HOSTS = 200
#: distinct verdicts shown per experiment under "Verdicts in full" in the HTML
DETAIL_ROWS = 150

CLASS_SYMBOL = {
    "affected": "\U0001f534",
    "contained": "\U0001f7e2",
    "not-measured": "\u26aa",
    "error": "\U0001f7e0",
    "unclassified": "\U0001f535",
}


def human(value: Any, unit: str = "") -> str:
    """A cell for people: 1.5 GiB, 20,000, 0.97, yes/no, '' for missing."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if unit == "bytes":
            n = float(value)
            for name, size in (
                ("TiB", 1024.0**4),
                ("GiB", 1024.0**3),
                ("MiB", 1024.0**2),
                ("KiB", 1024.0),
            ):
                if abs(n) >= size:
                    return f"{n / size:.1f} {name}"
            return f"{int(n)} bytes"
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(human(v) for v in value)
    return str(value)


#: what :func:`md_cell` changes: a character it escapes, whitespace but one space between words
_MD_CHANGES = re.compile(r"[\\|<>`]|[^\S ]|  |^ | $")


def md_cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes escaped, HTML-ish characters neutralised."""
    text = value if type(value) is str else str(value if value is not None else "")
    if _MD_CHANGES.search(text) is None:  # most cells (80,000 on 1,000 hosts): as they are
        return text
    text = " ".join(text.split())
    for a, b in (("\\", "\\\\"), ("|", "\\|"), ("<", "\\<"), (">", "\\>"), ("`", "\\`")):
        text = text.replace(a, b)
    return text


def _md_cells() -> Callable[[Any], str]:
    """:func:`md_cell` for one document: a text seen before is not looked at again (labels,
    symbols and verdicts repeat on every host)."""
    seen: dict[str, str] = {}

    def cell(value: Any) -> str:
        if type(value) is not str:
            return md_cell(value)
        out = seen.get(value)
        if out is None:
            out = seen[value] = md_cell(value)
        return out

    return cell


def _host_rows(entries: Iterable[HostEntry]) -> list[dict[str, str]]:
    rows = []
    for e in entries:
        f = e.result.facts
        rows.append(
            {
                "name": e.name,
                "run": e.run_id,
                "status": "ok" if e.result.ok else "failed",
                "distribution": human(dig(f, "distribution", "pretty"))
                or e.result.labels.get("suite", ""),
                "kernel": human(f.get("kernel")),
                "docker": human(dig(f, "docker", "server_version")),
                "arch": human(f.get("arch")),
                "cgroup": human(dig(f, "cgroup", "version")),
                "memory": human(dig(f, "limits", "mem_total_bytes"), "bytes"),
                "python": human(e.result.data.get("python")),
                "error": e.result.error["message"] if e.result.error else "",
            }
        )
    return rows


def _storage_rows(
    entries: Iterable[HostEntry], notes: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """The study's Table 3 for this lab; ``notes``: host -> a word on its driver (stand-in)."""
    rows = []
    for e in entries:
        f = e.result.facts
        if not f:
            continue
        rec = e.experiment("storage-location")
        raw = rec.get("metrics") if rec and rec.get("status") == "ok" else None
        m: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if m.get("host_path"):
            where = redact_ids(str(m["host_path"]))
        elif m.get("daemon_ns_path"):
            where = "only in the daemon's mount namespace: " + redact_ids(str(m["daemon_ns_path"]))
        elif m:
            where = f"{m.get('container_root_source') or '?'} ({m.get('container_root_fstype')})"
            where = redact_ids(where)
        else:
            where = ""
        root_fs = dig(f, "limits", "docker_root_fs") or {}
        rows.append(
            {
                "name": e.name,
                "driver": human(dig(f, "docker", "storage_driver")),
                "backing": human(dig(f, "docker", "backing_filesystem")),
                "root": human(dig(f, "docker", "root_dir")),
                "root_fs": " on ".join(
                    x for x in (human(root_fs.get("fstype")), human(root_fs.get("device"))) if x
                ),
                "root_free": human(root_fs.get("free_bytes"), "bytes"),
                "where": where,
                "in_tree": human(files_in_tree(m)) if m else "",
                "read": human(m.get("host_can_read")) if m else "",
                "write": human(m.get("host_can_write")) if m else "",
                "mount_ns": human(mount_namespace(e)),
                "asked": "; ".join(asked_mismatches(e.result)),
                "note": (notes or {}).get(e.name, ""),
            }
        )
    return rows


_KEY_METRICS = (
    "stop_reason",
    "landed_on_host_ratio",
    "written_bytes",
    "files_created",
    "resident_bytes",
    "processes_started",
    "host_free_bytes_min",
    "host_free_inodes_min",
    "host_mem_available_min",
    "host_free_pids_min",
    "oom_killed",
    "oom_victim",
    "limit_applied",
    "memory_limit_bytes",
    "pids_limit",
)


def _key_metrics(rec: dict[str, Any] | None) -> list[dict[str, str]]:
    raw = rec.get("metrics") if rec else None
    m: dict[str, Any] = raw if isinstance(raw, dict) else {}
    out = []
    for k in _KEY_METRICS:
        if m.get(k) is not None:
            out.append({"name": k, "value": human(m[k], unit_of(k, m[k]))})
    return out


def _cell(e: HostEntry, x: str) -> dict[str, str]:
    """One matrix cell: the class of experiment ``x`` on host ``e`` and its verdict in words."""
    rec = e.experiment(x)
    v = e.verdict(x)
    text = str(rec.get("verdict") or "") if rec else ""
    brief = short_verdict(text)
    if not rec and e.result.error:
        text = e.result.error["message"]
        brief = f"host failed ({e.result.error['kind']})"
    if brief.lower() in (v.label, v.cls, "error"):
        brief = ""
    return {
        "cls": v.cls,
        "label": v.label,
        "symbol": CLASS_SYMBOL[v.cls],
        "short": brief,
        "verdict": text or v.label,
        "why": v.why,
    }


def _matrix(
    data: ReportData,
) -> tuple[list[dict[str, Any]], dict[str, int], dict[str, list[dict[str, Any]]]]:
    """(matrix rows, hosts per class, experiment -> its cells with key metrics)."""
    matrix = []
    counts = {c: 0 for c in CLASSES}
    per_exp: dict[str, list[dict[str, Any]]] = {x: [] for x in data.experiments}
    for e in data.entries:
        cells = []
        for x in data.experiments:
            cell = _cell(e, x)
            counts[cell["cls"]] += 1
            cells.append(cell)
            rec = e.experiment(x)
            per_exp[x].append(
                {
                    "host": e.name,
                    "metrics": _key_metrics(rec),
                    "status": rec.get("status") if rec else "",
                    **cell,
                }
            )
        failed = None
        if e.result.error and not e.result.experiments:
            failed = {"kind": e.result.error["kind"], "message": e.result.error["message"]}
        matrix.append({"name": e.name, "ok": e.result.ok, "cells": cells, "failed": failed})
    return matrix, counts, per_exp


def _plot_groups(data: ReportData) -> list[dict[str, Any]]:
    """The plots by experiment (the verdict map first), in the report's experiment order."""
    plots_by_exp: dict[str, list[dict[str, Any]]] = {}
    for p in data.plots:
        plots_by_exp.setdefault(p.experiment, []).append(
            {
                "host": p.host,
                "uri": data_uri(p),
                "file": f"plots/{plot_file(p)}",
                "title": p.title,
                "caption": p.caption,
            }
        )
    order = ["", *data.experiments, *plots_by_exp]
    return [{"experiment": x, "plots": plots_by_exp.pop(x)} for x in order if x in plots_by_exp]


def plot_view(data: ReportData) -> dict[str, Any]:
    """The plots' part of :func:`view` (made again once the figures are drawn)."""
    return {"plot_groups": _plot_groups(data), "plots_left_out": data.plots_left_out}


def _detail_groups(hosts: list[dict[str, Any]], most: int) -> tuple[list[dict[str, Any]], int]:
    """One row per distinct verdict (class, rule, text, key numbers) with the hosts that share
    it, in host order; at most ``most`` rows: (rows, hosts left out)."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    left_out = 0
    for h in hosts:
        key = (
            h["cls"],
            h["why"],
            h["verdict"],
            tuple((m["name"], m["value"]) for m in h["metrics"]),
        )
        row = rows.get(key)
        if row is not None:
            row["hosts"].append(h["host"])
        elif len(rows) < most:
            rows[key] = {**h, "hosts": [h["host"]]}
        else:
            left_out += 1
    return list(rows.values()), left_out


def _run_rows(data: ReportData) -> list[dict[str, Any]]:
    return [
        {
            "id": r.run_id,
            "path": str(r.path),
            "started": human(r.meta.get("started")),
            "finished": human(r.meta.get("finished")),
            "status": r.status,
            "hosts": len(r.host_files),
            "experiments": ", ".join(str(x) for x in r.meta.get("experiments") or []),
            "mode": human((dig(r.meta, "asked", "exhaust") and "exhaust") or "bounded"),
        }
        for r in data.runs
    ]


def baseline_of(data: ReportData) -> Any:
    """The comparison with the 2015 study (made once per report)."""
    if data.baseline is None:
        data.baseline = compare_to_baseline(data.entries)
    return data.baseline


def _details(per_exp: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for x, hosts in per_exp.items():
        groups, left_out = _detail_groups(hosts, DETAIL_ROWS)
        out.append({"experiment": x, "hosts": hosts, "groups": groups, "left_out": left_out})
    return out


def view(data: ReportData) -> dict[str, Any]:
    """Everything the templates show, as plain data."""
    matrix, counts, per_exp = _matrix(data)
    baseline = baseline_of(data)
    driver_notes = {
        p.host: r.why
        for p in baseline.systems
        for r in p.rows
        if p.host and r.item == "storage driver" and r.agrees == "partial" and r.why
    }
    title_runs = ", ".join(r.run_id for r in data.runs)
    return {
        "title": f"labctl report: {title_runs}",
        "runs": _run_rows(data),
        "merged": len(data.runs) > 1,
        "generated": data.generated,
        "hosts": _host_rows(data.entries),
        "storage": _storage_rows(data.entries, driver_notes),
        "experiments": data.experiments,
        "matrix": matrix,
        "columns": [column_label(e.result) for e in data.entries],
        "counts": [
            {"cls": c, "label": LABELS[c], "n": counts[c], "symbol": CLASS_SYMBOL[c]}
            for c in CLASSES
            if counts[c] or c != "unclassified"
        ],
        "details": _details(per_exp),
        "tooltips": len(data.entries) <= TOOLTIP_HOSTS,
        **plot_view(data),
        "failed": [
            {"name": e.name, "kind": e.result.error["kind"], "message": e.result.error["message"]}
            for e in data.failed
            if e.result.error
        ],
        "baseline": baseline.to_dict(),
        "rules": list(RULES),
        "landed_ratio": LANDED_RATIO,
        "n_hosts": len(data.entries),
        "n_failed": len(data.failed),
    }


class _Environment(jinja2.Environment):
    """``{{ row.name }}`` on a view's dict looks up the key first: jinja2 tries the attribute
    first, and the AttributeError of every miss is most of a big report's rendering time. The
    same value either way (a dict's attributes are its methods, which the templates never use)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


_DICT_ATTRIBUTES = frozenset(dir(dict))


def _env(markdown: bool) -> jinja2.Environment:
    """HTML: autoescape on. Markdown: every ``{{ }}`` goes through :func:`md_cell` (finalize),
    which escapes what Markdown would read (pipes, backticks) and neutralises ``<``/``>``."""
    kwargs: dict[str, Any] = {"finalize": _md_cells()} if markdown else {}
    return _Environment(
        loader=jinja2.PackageLoader("labctl", "templates"),
        autoescape=not markdown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        **kwargs,
    )


def html_template() -> jinja2.Template:
    """report.html's template, compiled (made while the figures are still being drawn)."""
    return _env(markdown=False).get_template("report.html.j2")


def markdown_template() -> jinja2.Template:
    """report.md's template, compiled (its cells are escaped once per distinct text)."""
    return _env(markdown=True).get_template("report.md.j2")


def render_html(v: dict[str, Any], template: jinja2.Template | None = None) -> str:
    return (template or html_template()).render(**v)


def render_markdown(v: dict[str, Any], template: jinja2.Template | None = None) -> str:
    return (template or markdown_template()).render(**v)


# -- report.json --------------------------------------------------------------------------------


def _experiment_doc(e: HostEntry, name: str) -> dict[str, Any]:
    rec = e.experiment(name)
    v = e.verdict(name)
    return {
        "name": name,
        "status": rec.get("status") if rec else None,
        "class": v.cls,
        "class_label": v.label,
        "class_rule": v.why,
        "verdict": rec.get("verdict") if rec else None,
        "error": rec.get("error") if rec else None,
        "duration_s": rec.get("duration_s") if rec else None,
        "metrics": rec.get("metrics") if rec else None,
        "series_keys": e.series_keys.get(name, []),
    }


def _host_doc(e: HostEntry, experiments: list[str]) -> dict[str, Any]:
    r = e.result
    f = r.facts
    raw_docker = f.get("docker")
    docker: dict[str, Any] = raw_docker if isinstance(raw_docker, dict) else {}
    return {
        "name": e.name,
        "host": e.host,
        "run_id": e.run_id,
        "column": column_label(r),
        "status": "ok" if r.ok else "error",
        "error": r.error,
        "labels": r.labels,
        "distribution": format_value(dig(f, "distribution", "pretty")) or None,
        "kernel": f.get("kernel"),
        "docker_version": docker.get("server_version"),
        "storage_driver": docker.get("storage_driver"),
        "backing_filesystem": docker.get("backing_filesystem"),
        "docker_root": docker.get("root_dir"),
        "facts": f,
        "experiments": [_experiment_doc(e, name) for name in experiments],
    }


def document(data: ReportData, outputs: dict[str, Path] | None = None) -> dict[str, Any]:
    """The whole report as one JSON-able document (no series, no images)."""
    counts = {c: 0 for c in CLASSES}
    for e in data.entries:
        for name in data.experiments:
            counts[e.verdict(name).cls] += 1
    return {
        "schema": REPORT_SCHEMA,
        "kind": "labctl-report",
        "labctl_version": __version__,
        "generated": data.generated,
        "runs": [
            {
                "run_id": r.run_id,
                "path": str(r.path),
                "started": r.meta.get("started"),
                "finished": r.meta.get("finished"),
                "status": r.status,
                "hosts": len(r.host_files),
            }
            for r in data.runs
        ],
        "experiments": data.experiments,
        "classes": {c: LABELS[c] for c in CLASSES},
        "class_rules": list(RULES),
        "summary": {
            "hosts": len(data.entries),
            "failed_hosts": [e.name for e in data.failed],
            "verdicts": counts,
            "plots": len(data.plots),
            "plots_left_out": data.plots_left_out,
        },
        "hosts": [_host_doc(e, data.experiments) for e in data.entries],
        "baseline": baseline_of(data).to_dict(),
        "outputs": {k: str(v) for k, v in sorted((outputs or {}).items())},
    }
