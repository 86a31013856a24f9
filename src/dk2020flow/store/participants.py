"""Participants in the store: the 98 municipalities shipped with dk2020flow.

The CSV import format and its row checks live above the store, in
``service/participants.py``; the store keeps the shipped data set (a trusted
file, read without the import's checks) and ``replace_participants``.
"""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources

from dk2020flow.store.port import Municipality, ParticipantsTx

DEFAULTS = "data/municipalities.csv"


@cache
def default_municipalities() -> tuple[Municipality, ...]:
    """The 98 Danish municipalities shipped with dk2020flow (``dk2020flow/data``)."""
    resource = resources.files("dk2020flow").joinpath(DEFAULTS)
    text = resource.read_bytes().decode("utf-8-sig")
    rows = csv.DictReader(io.StringIO(text, newline=""))
    return tuple(
        Municipality(
            code=row["code"].strip(),
            name=row["name"].strip(),
            region=row["region"].strip(),
            group=(row.get("dk2020_group") or "").strip(),
        )
        for row in rows
        if any(value.strip() for value in row.values() if value)
    )


def seed_default_municipalities(tx: ParticipantsTx) -> int:
    """Add the shipped municipalities to a database that has none; return how many."""
    if tx.municipalities():
        return 0
    municipalities = default_municipalities()
    tx.replace_participants(municipalities, [])
    return len(municipalities)
