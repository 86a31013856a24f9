"""The scale section's fixture and the mail peer do what bench/ says (issue 17 points 2, 3).

- ``bench/scale.py``'s COPY load writes cases the engine reads as its own: listed by
  region, nothing due until ``make_due``, then fired by ``fire_due`` with their mail;
- ``bench/mail.py``'s bare aiosmtplib client gets exactly the bytes, envelope and MAIL
  options that ``SmtpTransport`` sends (the "same bytes" of the peer), checked against
  what a real aiosmtpd receives from both.

No timing here (speed goes in bench/).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"
N = 12
FILTERED = 3


@pytest.fixture
def bench_modules() -> Iterator[dict[str, Any]]:
    sys.path.insert(0, str(BENCH))
    try:
        import common
        import mail
        import scale
        import workload

        yield {"scale": scale, "mail": mail, "workload": workload, "common": common}
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.postgres
def test_copy_load_gives_open_cases_the_engine_lists_and_fires(
    empty_pg_url: str, bench_modules: dict[str, Any]
) -> None:
    from dk2020flow.clock import ManualClock
    from dk2020flow.service import Service
    from dk2020flow.store.port import CaseFilter
    from dk2020flow.store.repository import SqlStore

    scale, workload = bench_modules["scale"], bench_modules["workload"]
    took = scale.load(empty_pg_url, N, filtered=FILTERED)
    assert set(took) >= {"upgrade", "organisations", "cases", "events", "timers"}

    store = SqlStore(empty_pg_url)
    try:
        service = Service(store, clock=ManualClock(workload.FIRE_AT))
        listed = service.list_cases(CaseFilter(workflow="bench", region=scale.FILTER_REGION))
        assert len(listed) == FILTERED
        assert {c.state for c in listed} == {"waiting"}
        assert service.next_due_at() == scale.FUTURE
        assert service.fire_due(workload.FIRE_AT).total == 0

        scale.make_due(empty_pg_url, 1 + FILTERED, 4)
        result = service.fire_due(workload.FIRE_AT)
        assert (result.fired, result.failed) == (4, 0)
        found = workload.counts(empty_pg_url)
        assert found["fired"] == 4
        assert found["done"] == 4
        assert found["outbox"] == 4
        assert found["pending"] == N - 4
        # The ids continue after the loaded ones (the sequences were moved on).
        assert found["events"] == N + 2 * 4
    finally:
        store.close()


def test_bare_client_gets_the_bytes_smtp_transport_sends(
    tmp_path: Path, bench_modules: dict[str, Any]
) -> None:
    from aiosmtpd.controller import Controller

    from dk2020flow.clock import ManualClock
    from dk2020flow.notify.transports import SmtpTransport
    from dk2020flow.service import Service
    from dk2020flow.store.repository import SqlStore

    mail, workload = bench_modules["mail"], bench_modules["workload"]
    url = f"sqlite:///{tmp_path / 'mail.db'}"
    workload.prepare(url, 3)
    store = SqlStore(url)
    try:
        Service(store, clock=ManualClock(workload.FIRE_AT)).fire_due(workload.FIRE_AT)
    finally:
        store.close()

    received: list[tuple[str, list[str], bytes, list[str]]] = []

    class Keep:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(
                (
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    bytes(envelope.original_content),
                    list(envelope.mail_options),
                )
            )
            return "250 OK"

    port = bench_modules["common"].free_port()
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        recorder = mail._Recorder()
        mail._requeue(url)
        assert mail._drain(url, recorder, 3)[0] == 3
        mail._requeue(url)
        sent, _ = mail._drain(url, SmtpTransport(host="127.0.0.1", port=port, starttls=False), 3)
        assert sent == 3
        by_transport = list(received)
        received.clear()
        assert asyncio.run(mail._bare_send(port, recorder.sent)) == 3
    finally:
        controller.stop()
    assert received == by_transport
    assert len({data for _, _, data, _ in received}) == 3
    assert all(isinstance(r.data, bytes) and r.data for r in recorder.sent)
