"""The hash chain of a case's event log (tampering is detectable; docs/data-model.md).

Every event row carries ``hash``: the SHA-256, in hex, of a canonical JSON text of
the event's content together with the ``hash`` of the case's previous event (``""``
for its first). The store computes it in Python as it inserts events (one change,
a dispatch batch, or the 0002 migration filling in the rows written before it);
``dk2020flow case verify`` recomputes it.

The canonical text (format 1) is ``json.dumps`` of an object with the keys below,
sorted, without spaces, not ASCII-escaped; ``at`` is the instant in UTC in ISO 8601
with microseconds. The row's ``id`` and ``seq`` are not in it (the database numbers
``seq`` as it inserts): the order of the events is in the chain itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from dk2020flow.store.types import as_utc

FORMAT = 1
GENESIS = ""
"""The "previous hash" of a case's first event."""


def canonical(
    *,
    case_id: int,
    at: dt.datetime,
    kind: str,
    actor: str,
    role: str | None,
    trigger: str | None,
    from_state: str | None,
    to_state: str | None,
    comment: str,
    data: Mapping[str, Any],
    epoch: int,
    transition: int | None,
    prev: str,
) -> str:
    """The canonical JSON text an event's hash is taken over."""
    content = {
        "v": FORMAT,
        "case_id": case_id,
        "at": as_utc(at).isoformat(timespec="microseconds"),
        "kind": kind,
        "actor": actor,
        "role": role,
        "trigger": trigger,
        "from_state": from_state,
        "to_state": to_state,
        "comment": comment,
        "data": data,
        "epoch": epoch,
        "transition": transition,
        "prev": prev,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(row: Mapping[str, Any], prev: str) -> str:
    """The hash of an event row (the store's insert parameters, or a row read back)."""
    text = canonical(
        case_id=int(row["case_id"]),
        at=row["at"],
        kind=str(row["kind"]),
        actor=str(row["actor"]),
        role=row["role"],
        trigger=row["trigger"],
        from_state=row["from_state"],
        to_state=row["to_state"],
        comment=str(row["comment"]),
        data=row["data"],
        epoch=int(row["epoch"]),
        transition=row["transition"],
        prev=prev,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain(rows: list[dict[str, Any]], prev: str) -> str:
    """Set ``hash`` on each of one case's new event rows, in order, from ``prev`` on;
    return the last hash (``prev`` when there are no rows)."""
    for row in rows:
        row["hash"] = prev = row_hash(row, prev)
    return prev
