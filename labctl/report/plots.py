"""The report's figures: a few PNGs a person reads across many hosts, and one host's series.

matplotlib is imported here only, lazily (only when a figure is drawn), with the Agg backend and
without pyplot (no global state, no display).

Across hosts (the report): :func:`render_verdict_map`, every host's class in every experiment,
hosts grouped by their verdicts, with the counts per experiment beside it; and per experiment
:func:`render_experiment`, every drawn host as one thin line coloured by its class: the
container's usage over time, and how far the host's main series moved against what the
container used, with the 1:1 line "every unit lands on the host".

One host (``labctl report --host NAME``): :func:`render_series`. Left panel: the container's
usage and the host's main free amount over time. Right panel: how much each host-side series
moved since the start against what the container used, with the 1:1 line; points on that line
mean the host paid for all of it, points on the floor mean the container's use stayed inside.
"""

from __future__ import annotations

import io
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .classify import CLASSES, LABELS, series_unit
from .model import (
    LINE_POINTS,
    FigureJob,
    Line,
    Plot,
    floats,
    host_series,
    pick_primary,
    verdict_order,
)

_INK = "#1f2933"
_CONTAINER = "#3b6ea5"
_HOST = ("#c0392b", "#d68910", "#7d3c98", "#117a65")
#: the report's class colours (the HTML's --*-edge)
CLASS_COLOR = {
    "affected": "#e66a5c",
    "contained": "#5cb176",
    "not-measured": "#b6bec8",
    "error": "#f0b34a",
    "unclassified": "#7fa3d9",
}
_DPI = 80


def _first(values: list[float]) -> float:
    return next((v for v in values if not math.isnan(v)), 0.0)


def _bytes_scale(top: float) -> tuple[float, str]:
    for unit, size in (("TiB", 1024.0**4), ("GiB", 1024.0**3), ("MiB", 1024.0**2), ("KiB", 1024.0)):
        if top >= size:
            return size, unit
    return 1.0, "bytes"


def _scaled(values: list[float], unit: str) -> tuple[list[float], str]:
    if unit != "bytes":
        return values, unit
    top = max((abs(v) for v in values if not math.isnan(v)), default=0.0)
    size, name = _bytes_scale(top)
    return [v / size for v in values], name


def _count_ticks(ax: Any, which: str, unit: str) -> None:
    """1,234,567 instead of 1234567 (or 1.2e6) on count axes."""
    if unit != "count":
        return
    from matplotlib.ticker import FuncFormatter

    axis = ax.yaxis if which == "y" else ax.xaxis
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))


def _legend(ax: Any, ncol: int, **kwargs: Any) -> None:
    """A small legend above the panel, without a frame."""
    ax.legend(
        **kwargs,
        fontsize=7,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        ncol=ncol,
        frameon=False,
        borderaxespad=0.2,
    )


def _draw_over_time(
    ax: Any,
    t: list[float],
    container: list[float] | None,
    c_unit: str,
    primary: tuple[str, list[float], str] | None,
) -> None:
    """Left panel: the container's usage and the host's ``primary`` (name, values, unit)."""
    handles = []
    if container is not None:
        cv, cu = _scaled(container, c_unit)
        (line,) = ax.plot(t, cv, color=_CONTAINER, lw=2, label=f"container usage ({cu})")
        ax.fill_between(t, cv, color=_CONTAINER, alpha=0.12, lw=0)
        ax.set_ylabel(f"container ({cu})", color=_CONTAINER, fontsize=8)
        _count_ticks(ax, "y", c_unit)
        handles.append(line)
    if primary is not None:
        key, values, unit = primary
        hax = ax.twinx() if container is not None else ax
        hv, hu = _scaled(values, unit)
        (line,) = hax.plot(t, hv, color=_HOST[0], lw=1.6, label=f"host {key} ({hu})")
        hax.set_ylabel(f"host {key} ({hu})", color=_HOST[0], fontsize=8)
        hax.tick_params(labelsize=7)
        hax.ticklabel_format(axis="y", useOffset=False, style="plain")
        _count_ticks(hax, "y", unit)
        handles.append(line)
    ax.set_xlabel("seconds since start", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)
    _legend(ax, 2, handles=handles)


def _draw_against_usage(
    bx: Any, container: list[float], c_unit: str, same: dict[str, list[float]]
) -> None:
    """Right panel: how far each host series in the container's unit moved against its usage."""
    cv, cu = _scaled(container, c_unit)
    size = 1.0
    if c_unit == "bytes":
        size = _bytes_scale(max(abs(v) for v in container if not math.isnan(v)))[0]
    top = 0.0
    for i, (key, vals) in enumerate(same.items()):
        v0 = _first(vals)
        moved = [abs(v - v0) / size for v in vals]
        top = max([top, *(m for m in moved if not math.isnan(m))])
        bx.plot(cv, moved, "o-", ms=2.5, lw=1, color=_HOST[i % len(_HOST)], label=f"host {key}")
    cmax = max((v for v in cv if not math.isnan(v)), default=0.0)
    edge = max(cmax, top) or 1.0
    bx.plot([0, edge], [0, edge], ls="--", lw=1, color="#7b8794", label="1:1: all lands on host")
    bx.set_xlim(0, cmax * 1.04 or 1)
    bx.set_ylim(0, max(top, cmax) * 1.08 or 1)
    bx.set_xlabel(f"container usage ({cu})", fontsize=8)
    bx.set_ylabel(f"host-side change since start ({cu})", fontsize=8)
    bx.tick_params(labelsize=7)
    bx.grid(alpha=0.25)
    _legend(bx, 3)
    _count_ticks(bx, "y", c_unit)
    _count_ticks(bx, "x", c_unit)


def render_series(host: str, record: dict[str, Any], series: dict[str, Any]) -> Plot | None:
    """The PNG of one record's series, or None when there is nothing to draw."""
    t_raw = series.get("t")
    n = len(t_raw) if isinstance(t_raw, list) else 0
    if n < 2:
        return None
    t = floats(t_raw, n) or [float(i) for i in range(n)]
    container = floats(series.get("container"), n)
    hs = host_series(series, n)
    if not hs and container is None:
        return None
    units = {k: series_unit(k, record) for k in hs}
    c_unit = series_unit("container", record)
    name = str(record.get("name", "experiment"))
    fig = _figure(9.6, 3.1)
    same = {k: v for k, v in hs.items() if units[k] == c_unit}
    two = container is not None and bool(same)
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    primary = pick_primary(list(hs), units, c_unit) if hs else None
    shown = None if primary is None else (primary, hs[primary], units[primary])
    _draw_over_time(axes[0], t, container, c_unit, shown)
    drawn: list[str] = []
    not_drawn: list[str] = []
    if two and container is not None:
        _draw_against_usage(axes[1], container, c_unit, same)
        drawn = list(same)
        not_drawn = [k for k in hs if units[k] != c_unit]
    elif primary is not None:
        drawn = [primary]
        not_drawn = [k for k in hs if k != primary]
    fig.suptitle(f"{name} on {host}", fontsize=10, color=_INK, x=0.01, y=0.98, ha="left")
    # fixed margins: tight_layout costs more than the rest of the figure together
    fig.subplots_adjust(left=0.075, right=0.985 if two else 0.92, top=0.8, bottom=0.15)
    if two:
        fig.subplots_adjust(wspace=0.42)
    caption = f"{name} on {host} · {n} samples · drawn: {', '.join(drawn)}"
    if not_drawn:
        caption += f" · also recorded: {', '.join(not_drawn)}"
    return Plot(f"{host}--{name}", name, f"{name} on {host}", caption, _png(fig), host)


def warm_up() -> None:
    """Import what drawing needs (run in the figure worker while the hosts load)."""
    import matplotlib.backends.backend_agg
    import matplotlib.collections
    import matplotlib.figure  # noqa: F401


def draw_figures(job: FigureJob) -> list[Plot]:
    """The report's figures across hosts: the verdict map, then one per experiment."""
    out = [render_verdict_map(job.hosts, job.experiments, job.patterns)]
    for name, lines, recorded, note in job.lines:
        plot = render_experiment(name, lines, recorded, cap_note=note)
        if plot is not None:
            out.append(plot)
    return out


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


# -- across hosts ---------------------------------------------------------------------------
#: hosts named under the verdict map when there are at most this many
MAP_NAMED_HOSTS = 40


def render_verdict_map(
    hosts: Sequence[str], experiments: Sequence[str], patterns: Sequence[Sequence[str]]
) -> Plot:
    """Every host's class in every experiment (``patterns[i][j]``: host i, experiment j): one
    column per host, hosts with the same verdicts side by side (largest group first), and the
    hosts per class of each experiment beside it."""
    from matplotlib.colors import ListedColormap

    groups = verdict_order(patterns)
    order = [i for g in groups for i in g]
    rank = {c: i for i, c in enumerate(CLASSES)}
    grid = [
        [rank.get(patterns[i][j], rank["unclassified"]) for i in order]
        for j in range(len(experiments))
    ]
    named = len(hosts) <= MAP_NAMED_HOSTS
    top_in, bottom_in = 0.45, 1.25 if named else 0.55  # legend above; names or counts below
    height = 0.24 * len(experiments) + top_in + bottom_in
    fig = _figure(9.6, height)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [4, 1.2]})
    cmap = ListedColormap([CLASS_COLOR[c] for c in CLASSES])
    ax.imshow(
        grid,
        aspect="auto",
        cmap=cmap,
        vmin=-0.5,
        vmax=len(CLASSES) - 0.5,
        interpolation="nearest",
    )
    ax.set_yticks(range(len(experiments)), labels=list(experiments), fontsize=7)
    edges = [0]
    for g in groups:
        edges.append(edges[-1] + len(g))
    for edge in edges[1:-1] if len(groups) <= 20 else ():  # more: the lines would hide cells
        ax.axvline(edge - 0.5, color="white", lw=0.8)
    if named:
        ax.set_xticks(range(len(order)), labels=[hosts[i] for i in order], fontsize=6, rotation=90)
    elif len(groups) <= 30:  # each group's size under it
        mids = [(a + b - 1) / 2 for a, b in itertools.pairwise(edges)]
        ax.set_xticks(mids, labels=[f"{len(g):,}" for g in groups], fontsize=6)
    else:
        ax.set_xticks([])
    ax.set_xlabel(
        f"{len(hosts):,} hosts, one column each, grouped by their verdicts "
        f"({len(groups)} groups, largest first)",
        fontsize=8,
    )
    ax.tick_params(length=0)
    left = [0] * len(experiments)
    present = []
    for cls in CLASSES:
        counts = [sum(1 for p in patterns if p[j] == cls) for j in range(len(experiments))]
        if any(counts):
            present.append(cls)
            ys = range(len(experiments))
            bx.barh(ys, counts, left=left, color=CLASS_COLOR[cls], height=0.8)
            left = [a + b for a, b in zip(left, counts, strict=True)]
    bx.set_ylim(len(experiments) - 0.5, -0.5)
    bx.set_yticks([])
    bx.set_xlabel("hosts per class", fontsize=8)
    bx.tick_params(labelsize=7)
    _legend(ax, len(present), handles=[_swatch(CLASS_COLOR[c], LABELS[c]) for c in present])
    fig.subplots_adjust(
        left=0.14,
        right=0.985,
        top=1 - top_in / height,
        bottom=bottom_in / height,
        wspace=0.05,
    )
    caption = (
        f"Every host's verdict class in every experiment ({len(hosts):,} hosts x "
        f"{len(experiments)} experiments); hosts with the same verdicts stand side by side."
    )
    return Plot("verdicts", "", "verdict classes across hosts", caption, _png(fig))


def _scale(lines: Sequence[Line], unit: str, attr: str) -> tuple[float, str]:
    if unit != "bytes":
        return 1.0, unit
    top = 0.0
    for line in lines:
        values = getattr(line, attr)
        if values is not None:
            top = max(top, max((abs(v) for v in values if not math.isnan(v)), default=0.0))
    size, name = _bytes_scale(top)
    return size, name


def _segments(
    xs: Sequence[Sequence[float]], ys: Sequence[Sequence[float]], sx: float, sy: float
) -> list[list[tuple[float, float]]]:
    return [
        [(x / sx, y / sy) for x, y in zip(xv, yv, strict=True)]
        for xv, yv in zip(xs, ys, strict=True)
    ]


def render_experiment(
    name: str, lines: Sequence[Line], recorded: int, *, cap_note: str = ""
) -> Plot | None:
    """Every drawn host of one experiment as a thin line coloured by its verdict class: how far
    the host's main series moved against what the container used (with the 1:1 line), or, when
    the container's usage is not in the same unit, against time.

    ``recorded``: hosts that recorded series (``lines`` may be a sample of them). Lines whose
    units differ from the most common are left out (counted in the caption).
    """
    if not lines:
        return None
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    unit, c_unit = Counter((ln.unit, ln.c_unit) for ln in lines).most_common(1)[0][0]
    same = [ln for ln in lines if (ln.unit, ln.c_unit) == (unit, c_unit)]
    with_c = [ln for ln in same if ln.container is not None]
    against = bool(with_c) and unit == c_unit
    shown = with_c if against else same
    fig = _figure(6.4, 3.0)
    ax = fig.subplots(1, 1)
    colors = [CLASS_COLOR.get(ln.cls, CLASS_COLOR["unclassified"]) for ln in shown]
    many = len(shown) > 50
    size, su = _scale(shown, unit, "moved")
    if against:
        size = max(size, _scale(shown, c_unit, "container")[0])
        su = _bytes_scale(size)[1] if unit == "bytes" else unit
        xs: list[Sequence[float]] = [ln.container or () for ln in shown]
        segs = _segments(xs, [ln.moved for ln in shown], size, size)
    else:
        segs = _segments([ln.t for ln in shown], [ln.moved for ln in shown], 1.0, size)
    ax.add_collection(
        LineCollection(
            segs, colors=colors, linewidths=0.8 if many else 1.4, alpha=0.45 if many else 0.85
        )
    )
    ax.autoscale()
    ax.set_ylim(bottom=0)
    if against:
        hi = max(ax.get_xlim()[1], ax.get_ylim()[1])
        ax.plot([0, hi], [0, hi], ls="--", lw=1, color="#7b8794")
        ax.set_xlim(0, ax.get_xlim()[1])
        ax.set_xlabel(f"container usage ({su})", fontsize=8)
        _count_ticks(ax, "x", c_unit)
    else:
        ax.set_xlabel("seconds since start", fontsize=8)
    keys = "/".join(sorted({ln.key for ln in shown}))
    ax.set_ylabel(f"host {keys}: change ({su})", fontsize=8)
    _count_ticks(ax, "y", unit)
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)
    counts = Counter(ln.cls for ln in shown)
    handles = [
        _swatch(CLASS_COLOR[c], f"{LABELS[c]} ({counts[c]:,})") for c in CLASSES if counts.get(c)
    ]
    if against:
        handles.append(_swatch("#7b8794", "1:1: all lands on host", ls="--"))
    _legend(ax, 3, handles=handles)
    fig.suptitle(
        f"{name}: {len(shown):,} hosts", fontsize=10, color=_INK, x=0.01, y=0.98, ha="left"
    )
    fig.subplots_adjust(left=0.12, right=0.98, top=0.76, bottom=0.15)
    what = (
        "how far the host's main series moved against what the container used (on the dashed "
        "1:1 line the host paid for every unit)"
        if against
        else "how far the host's main series moved since the start"
    )
    caption = f"{name}: one line per host, coloured by its verdict class: {what}. "
    caption += f"{len(shown):,} of {recorded:,} hosts with series drawn"
    if cap_note:
        caption += f" ({cap_note})"
    if len(shown) < len(lines):
        caption += f"; {len(lines) - len(shown)} left out (other units or no container series)"
    caption += f"; each series thinned to at most {LINE_POINTS} points."
    return Plot(f"series--{name}", name, f"{name} across hosts", caption, _png(fig))


def _swatch(color: str, label: str, ls: str = "-") -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, lw=2, ls=ls, label=label)
