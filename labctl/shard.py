"""``--shard K/N``: the K-th of N slices of an inventory's hosts, for N controllers to probe.

The slices are dealt round-robin over the host names in sorted order, so every controller that
reads the same inventory gets the same slice, the slices are disjoint, cover every host and
differ in size by one host at most. Each shard's run.json records which slice it is
(:func:`shard_record`); ``labctl report`` merges the N run folders as one run (:func:`shard_set`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, names: Iterable[str]) -> list[str]:
        """This shard's host names, sorted."""
        return sorted(set(names))[self.index - 1 :: self.count]


def parse_shard(text: str) -> Shard:
    """``K/N`` with 1 <= K <= N; ConfigError names what is wrong."""
    m = _FORM.match(text)
    if not m:
        raise ConfigError(f"--shard {text!r} is not K/N", hint="e.g. --shard 1/2 and --shard 2/2")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(
            f"--shard {text}: K must be between 1 and N", hint=f"give 1/{max(n, 1)} .. {n}/{n}"
        )
    return Shard(k, n)


def hosts_digest(names: Iterable[str]) -> str:
    """Names the whole host list the shards were cut from (same inventory, same hosts)."""
    return hashlib.sha256("\n".join(sorted(set(names))).encode()).hexdigest()[:16]


def shard_record(shard: Shard, all_names: Sequence[str]) -> dict[str, Any]:
    """What run.json keeps of the slice (``shard``)."""
    return {
        "index": shard.index,
        "count": shard.count,
        "of_hosts": len(set(all_names)),
        "hosts_digest": hosts_digest(all_names),
        "hosts": shard.select(all_names),
    }


@dataclass(frozen=True)
class ShardSet:
    count: int
    indexes: tuple[int, ...]

    @property
    def missing(self) -> list[int]:
        return [k for k in range(1, self.count + 1) if k not in self.indexes]


def shard_set(metas: Sequence[dict[str, Any]]) -> ShardSet | None:
    """The shards these run.json documents are, when they are distinct shards of one host list
    (same N, same hosts digest, no index twice); None otherwise (an ordinary merge)."""
    if len(metas) < 2:
        return None
    records = [m.get("shard") for m in metas]
    if not all(isinstance(r, dict) for r in records):
        return None
    keys = {(r.get("count"), r.get("hosts_digest")) for r in records if isinstance(r, dict)}
    indexes = [r.get("index") for r in records if isinstance(r, dict)]
    if len(keys) != 1 or len(set(indexes)) != len(indexes):
        return None
    count = next(iter(keys))[0]
    if not isinstance(count, int) or not all(isinstance(k, int) for k in indexes):
        return None
    return ShardSet(count, tuple(sorted(int(k) for k in indexes if isinstance(k, int))))
