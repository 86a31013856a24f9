"""The store's SQL, one module per concern of the port (``store/port.py``).

Each module holds a mixin ``Sql<Concern>Tx`` (on ``base.SqlBase``, the transaction's
connection) implementing its protocol, beside the statements it runs:

- ``definitions.py``  ``DefinitionsTx``  workflow definitions
- ``participants.py`` ``ParticipantsTx`` organisations and contacts
- ``cases.py``        ``CasesTx``        cases, their event logs (numbered, hash-chained)
- ``timers.py``       ``TimersTx``       case timers and programme timers, the claims
- ``outbox.py``       ``OutboxTx``       the outbox: queue, claim (lease), mark
- ``daemons.py``      ``DaemonsTx``      the daemons' heartbeats
- ``reports.py``      ``ReportsTx``      the whole programme at once (reports, simulator, probe)

``store/repository.py``'s ``SqlTx`` composes them into the whole ``Tx``; the rows <->
records conversions they share are in ``store/rows.py``; the dispatch batch's bulk
writes in ``store/bulk.py``. Imports go one way: ``cases`` uses ``timers``,
``participants`` and ``outbox``; ``reports`` uses ``timers``; nothing imports ``cases``
but ``bulk`` and the repository.

The statements of the hot paths are built once, at import, with bound parameters
(SQLAlchemy then reuses the compiled form; building a statement per call costs more
than SQLite takes to run it), and each does in one round trip what it can: a claim
returns whole rows, a change numbers its events in the INSERT.

Claims read ``(status, due_at)`` / ``(status, next_attempt_at)`` through their
indexes, so a tick costs in proportion to what is due, not to the number of
cases (DESIGN.md invariant 8). On PostgreSQL they lock the rows they return
with ``FOR UPDATE SKIP LOCKED``, so concurrent daemons never get the same row;
on SQLite (one writer at a time, ``BEGIN IMMEDIATE``) the clause is a no-op.
"""
