"""Several nodes' log records of one function, merged into one list ordered by time.

A record is ``<UTC timestamp> <instance> <stream> <text>`` (faasd/pool/logs.py);
its timestamp (``2026-11-27T12:06:38.913Z``, fixed width) sorts as text. Each
node's records keep their own order; records of the same millisecond on two
nodes come in the order the nodes are given. ``tail`` keeps the last N of the
merged list, so the nodes are asked for their last N each.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence

NodeLine = tuple[str, str]  # (node, record)


def timestamp_of(record: str) -> str:
    return record.split(" ", 1)[0]


def _tagged(node: str, records: Sequence[str]) -> Iterator[NodeLine]:
    for record in records:
        yield node, record


def merge(records: Mapping[str, Sequence[str]], tail: int | None = None) -> list[NodeLine]:
    """Every node's records as (node, record), oldest first; the last ``tail`` of them when given."""
    merged = list(
        heapq.merge(*(_tagged(node, lines) for node, lines in records.items()), key=lambda nl: timestamp_of(nl[1]))
    )
    if tail is None:
        return merged
    return merged[len(merged) - tail :] if 0 < tail < len(merged) else (merged if tail > 0 else [])
