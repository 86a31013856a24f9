"""A case reference has one meaning: ``#12`` is a case number, anything else an organisation
(#15.17b)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from dk2020flow.clock import ManualClock
from dk2020flow.errors import NotFoundError
from dk2020flow.service import Service
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
START = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def service(sqlite_url: str) -> Iterator[Service]:
    store = SqlStore(sqlite_url)
    try:
        svc = Service(store, clock=ManualClock(START))
        svc.load_workflow(ROOT / "workflows" / "status_reports.yaml")
        svc.load_workflow(ROOT / "workflows" / "dk2020.yaml")
        yield svc
    finally:
        store.close()


def test_a_organisation_code_never_matches_a_case_number(service: Service) -> None:
    with service.store.read() as tx:
        organisations = tx.organisations()
    assert len(organisations) == 98
    for m in organisations:
        service.open_case("status_reports", m.code, actor="t", role=None)
    opened = [
        service.open_case("dk2020", name, actor="t", role=None)
        for name in ("Aarhus", "Odense", "Aalborg")
    ]
    assert [c.id for c in opened] == [99, 100, 101]
    # København's code is 101, the number of Aalborg's case: still København's own case.
    kbh = service.open_case("dk2020", "København", actor="t", role=None)
    assert (kbh.organisation_name, kbh.id) == ("København", 102)
    assert service.show("101", workflow="dk2020").case.organisation_name == "København"
    assert service.show("#101").case.organisation_name == "Aalborg"
    assert service.show("København", workflow="dk2020").case.id == 102


def test_a_bare_number_that_is_no_organisation_says_how_to_name_a_case(
    service: Service,
) -> None:
    case = service.open_case("dk2020", "Aarhus", actor="t", role=None)
    assert service.show(f"#{case.id}").case.organisation_name == "Aarhus"
    with pytest.raises(NotFoundError, match=f"#{case.id}"):
        service.show(str(case.id))
