"""What each host is doing, for people: a live table on a terminal, plain lines elsewhere.

The stages report through one callback, ``progress(host, message)``. On a terminal the board
keeps one row per host (stage, current experiment, elapsed, last word) and ends with a summary
table; in a log or CI (no terminal) it prints the same plain ``host message`` lines as always.
The stage is read from the words the pipeline and the probe already say, so the library needs
no knowledge of the view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .experiments import EXPERIMENTS

#: message -> stage, by its first words
_STAGE_WORDS = (
    ("provisioning", "provision"),
    ("connected", "probe"),
    ("agent pushed", "probe"),
    ("agent running", "probe"),
    ("reconnected", "probe"),
    ("collected", "collected"),
    ("done", "done"),
    ("failed:", "failed"),
    ("agent reported:", "failed"),
)
_ENDED = ("done", "failed", "collected")


@dataclass
class HostRow:
    host: str
    stage: str = "lab"
    experiment: str = ""
    finished: list[str] = field(default_factory=list)
    last: str = ""
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    def elapsed(self, now: float) -> float:
        return (self.ended or now) - self.started

    def update(self, message: str, now: float) -> None:
        self.last = message
        for words, stage in _STAGE_WORDS:
            if message.startswith(words):
                self.stage = stage
                self.ended = now if stage in _ENDED else None
                return
        name, sep, rest = message.partition(": ")
        if sep and name in EXPERIMENTS:
            if self.stage not in _ENDED:
                self.stage = "probe"
            if rest.startswith("starting"):
                self.experiment = name
            elif " so far" not in rest and name not in self.finished:
                self.finished.append(name)


class HostBoard:
    """The progress callback of the CLI; ``with board:`` shows the live view on a terminal."""

    def __init__(self, console: Console, live: bool | None = None) -> None:
        self.console = console
        self.live_wanted = console.is_terminal if live is None else live
        self.rows: dict[str, HostRow] = {}
        self._live: Live | None = None

    def __call__(self, host: str, message: str) -> None:
        now = time.monotonic()
        row = self.rows.get(host)
        if row is None:
            row = self.rows[host] = HostRow(host, started=now)
        row.update(message, now)
        if self._live is None:  # live: the table is drawn by Live's own refresh, 4 times a second
            self.console.print(f"[bold cyan]{host}[/] {message}", markup=True, soft_wrap=True)

    def table(self, now: float | None = None) -> RenderableType:
        now = time.monotonic() if now is None else now
        t = Table(box=None, pad_edge=False, show_edge=False, expand=False)
        for col in ("host", "stage", "experiment", "elapsed", "last"):
            t.add_column(
                col, no_wrap=True, overflow="ellipsis", max_width=70 if col == "last" else None
            )
        for row in list(self.rows.values()):  # hosts' threads may add rows meanwhile
            style = {"failed": "red", "done": "green", "collected": "green"}.get(row.stage, "")
            t.add_row(
                Text(row.host, style="bold cyan"),
                Text(row.stage, style=style),
                row.experiment + (f" ({len(row.finished)} done)" if row.finished else ""),
                f"{row.elapsed(now):5.0f} s",
                row.last,
            )
        return t

    def summary(self) -> RenderableType:
        now = time.monotonic()
        t = Table(title="hosts", title_justify="left", box=None, pad_edge=False)
        for col in ("host", "result", "experiments", "elapsed"):
            t.add_column(col, no_wrap=True)
        for row in list(self.rows.values()):  # hosts' threads may add rows meanwhile
            ok = row.stage in ("done", "collected")
            t.add_row(
                Text(row.host, style="bold cyan"),
                Text(
                    row.stage if row.stage in _ENDED else f"stopped at {row.stage}",
                    style="green" if ok else "red",
                ),
                str(len(row.finished)),
                f"{row.elapsed(now):.0f} s",
            )
        return t

    def __enter__(self) -> HostBoard:
        if self.live_wanted:
            self._live = Live(
                console=self.console, refresh_per_second=4, transient=True,
                get_renderable=self.table,
            )  # fmt: skip
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.__exit__(exc_type, exc, tb)
            if self.rows:
                self.console.print(self.summary())
