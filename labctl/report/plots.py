"""One PNG per experiment and host: the host-side series against the container's usage.

matplotlib is imported here only, lazily, with the Agg backend and without pyplot (no global
state, no display). Left panel: the container's usage and the host's main free amount over time.
Right panel: how much each host-side series moved since the start against what the container
used, with the 1:1 line "every unit lands on the host"; points on that line mean the host paid
for all of it, points on the floor mean the container's use stayed inside.
"""

from __future__ import annotations

import io
import math
from typing import Any

from .classify import series_unit
from .model import Plot

_INK = "#1f2933"
_CONTAINER = "#3b6ea5"
_HOST = ("#c0392b", "#d68910", "#7d3c98", "#117a65")
_PRIMARY_WORDS = ("free", "available")


def _floats(values: Any, n: int) -> list[float] | None:
    if not isinstance(values, list) or len(values) != n:
        return None
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float):
            out.append(math.nan)
        else:
            out.append(float(v))
    return out if any(not math.isnan(v) for v in out) else None


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


def pick_primary(keys: list[str], units: dict[str, str], container_unit: str) -> str:
    """The host series that answers the question: a 'free' amount in the container's unit."""

    def score(k: str) -> tuple[int, int, str]:
        return (
            0 if units[k] == container_unit else 1,
            0 if any(w in k for w in _PRIMARY_WORDS) else 1,
            k,
        )

    return sorted(keys, key=score)[0]


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


def _host_series(series: dict[str, Any], n: int) -> dict[str, list[float]]:
    """The host-side series (every key but ``t`` and ``container``) that hold numbers."""
    out: dict[str, list[float]] = {}
    for key in sorted(series):
        if key in ("t", "container"):
            continue
        values = _floats(series[key], n)
        if values is not None:
            out[key] = values
    return out


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
    t = _floats(t_raw, n) or [float(i) for i in range(n)]
    container = _floats(series.get("container"), n)
    host_series = _host_series(series, n)
    if not host_series and container is None:
        return None
    units = {k: series_unit(k, record) for k in host_series}
    c_unit = series_unit("container", record)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    name = str(record.get("name", "experiment"))
    fig = Figure(figsize=(9.6, 3.1), dpi=80)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    same = {k: v for k, v in host_series.items() if units[k] == c_unit}
    two = container is not None and bool(same)
    axes = fig.subplots(1, 2 if two else 1, squeeze=False)[0]
    primary = pick_primary(list(host_series), units, c_unit) if host_series else None
    shown = None if primary is None else (primary, host_series[primary], units[primary])
    _draw_over_time(axes[0], t, container, c_unit, shown)
    drawn: list[str] = []
    not_drawn: list[str] = []
    if two and container is not None:
        _draw_against_usage(axes[1], container, c_unit, same)
        drawn = list(same)
        not_drawn = [k for k in host_series if units[k] != c_unit]
    elif primary is not None:
        drawn = [primary]
        not_drawn = [k for k in host_series if k != primary]
    fig.suptitle(f"{name} on {host}", fontsize=10, color=_INK, x=0.01, y=0.98, ha="left")
    # fixed margins: tight_layout costs more than the rest of the figure together
    fig.subplots_adjust(left=0.075, right=0.985 if two else 0.92, top=0.8, bottom=0.15)
    if two:
        fig.subplots_adjust(wspace=0.42)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return Plot(host, name, buf.getvalue(), tuple(drawn), tuple(not_drawn), n)
