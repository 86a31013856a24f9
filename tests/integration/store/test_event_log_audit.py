"""The audit log is append-only in the database and hash-chained (#15.6).

UPDATE and DELETE of ``events`` are refused by triggers (SQLite and PostgreSQL); each
event's hash covers its content and the previous event's hash; ``case verify`` finds
an event changed by someone who dropped the trigger first, as an attacker with access to
the database could, and passes on a programme run by the simulation.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import exc, text

from dk2020flow.clock import ManualClock
from dk2020flow.engine.records import EventKind
from dk2020flow.service import Service
from dk2020flow.service.verify import VERIFY_FAILED_EXIT, chain_problems
from dk2020flow.simulate import run_simulation
from dk2020flow.store.chain import GENESIS
from dk2020flow.store.port import CaseFilter
from dk2020flow.store.repository import SqlStore

ROOT = Path(__file__).resolve().parents[3]
MINI = ROOT / "tests" / "data" / "mini" / "workflows" / "mini.yaml"
SIM = ROOT / "tests" / "integration" / "simulate" / "data"
START = dt.datetime(2020, 6, 20, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def service(store: SqlStore) -> Service:
    svc = Service(store, clock=ManualClock(START))
    svc.load_workflow(MINI)
    return svc


def _a_case_with_history(service: Service) -> int:
    case = service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    service.fire("Aarhus", "submit", actor="anna", role="contact_person", data={"note": "klar"})
    service.fire("Aarhus", "accept", actor="sekretariat", role="secretariat")
    assert case.id is not None
    return case.id


def _drop_triggers(store: SqlStore) -> None:
    """What an attacker with access to the database would do first."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(text("DROP TRIGGER events_no_update"))
            conn.execute(text("DROP TRIGGER events_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER events_no_update_delete ON events"))


def _verify(store: SqlStore, *args: str) -> tuple[int, str]:
    """`dk2020flow case verify …` in a process of its own, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "dk2020flow", "case", "verify", *args, "--db", store.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_update_of_an_event_is_refused(service: Service, store: SqlStore) -> None:
    case_id = _a_case_with_history(service)
    with pytest.raises(exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(
            text("UPDATE events SET comment = 'nothing happened' WHERE case_id = :c"),
            {"c": case_id},
        )
    with store.read() as tx:
        assert all(e.record.comment != "nothing happened" for e in tx.history(case_id))


def test_delete_of_an_event_is_refused(service: Service, store: SqlStore) -> None:
    case_id = _a_case_with_history(service)
    with pytest.raises(exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM events WHERE case_id = :c"), {"c": case_id})
    with store.read() as tx:
        assert len(tx.history(case_id)) == 3


def test_each_event_is_chained_to_the_one_before(service: Service, store: SqlStore) -> None:
    case_id = _a_case_with_history(service)
    with store.read() as tx:
        events = tx.history(case_id)
    assert [e.seq for e in events] == [1, 2, 3]
    assert all(e.hash is not None and len(e.hash) == 64 for e in events)
    assert len({e.hash for e in events}) == 3
    assert chain_problems(events) == []
    assert events[0].hash != GENESIS
    assert events[1].record.transition == 0  # mini's `submit` is its first transition


def test_verify_passes_on_an_untouched_log(service: Service, store: SqlStore) -> None:
    _a_case_with_history(service)
    service.open_case("mini", "Odense", actor="tester", role="secretariat")
    assert all(check.ok for check in service.verify())
    code, output = _verify(store, "--all")
    assert code == 0, output
    assert "2 case(s)" in output and "intact" in output


def test_a_tampered_event_is_found_by_verify(service: Service, store: SqlStore) -> None:
    case_id = _a_case_with_history(service)
    service.open_case("mini", "Odense", actor="tester", role="secretariat")
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE events SET actor = 'someone else' WHERE case_id = :c AND seq = 2"),
            {"c": case_id},
        )
    code, output = _verify(store, "--all")
    assert code == VERIFY_FAILED_EXIT, output
    assert f"case {case_id} (Aarhus, mini): event #2 (transition" in output
    assert "hash does not match" in output
    assert "1 of 2 case(s) do not check out" in output
    # One case by its reference: the same finding.
    code, output = _verify(store, f"#{case_id}")
    assert code == VERIFY_FAILED_EXIT and "event #2" in output


def test_a_removed_event_is_found_by_verify(service: Service, store: SqlStore) -> None:
    case_id = _a_case_with_history(service)
    _drop_triggers(store)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM events WHERE case_id = :c AND seq = 3"), {"c": case_id})
    code, output = _verify(store, "Aarhus")
    assert code == VERIFY_FAILED_EXIT, output
    assert "state: the log gives 'submitted', the case row says 'accepted'" in output


def test_verify_follows_a_case_through_a_migration(
    service: Service, store: SqlStore, tmp_path: Path
) -> None:
    """Each event's transition is read in the version it was taken in: version 2 lists the
    transitions in another order."""
    case = service.open_case("mini", "Aarhus", actor="tester", role="secretariat")
    service.fire("Aarhus", "submit", actor="anna", role="contact_person", data={"note": "klar"})
    text_v1 = MINI.read_text("utf-8")
    head, _, transitions = text_v1.partition("transitions:\n")
    submit, accept, expire = transitions.split("  - trigger: ")[1:]
    text_v2 = head.replace('version: "1"', 'version: "2"') + "transitions:\n"
    text_v2 += "".join("  - trigger: " + t for t in (expire, accept, submit))
    (tmp_path / "workflows").mkdir()
    (tmp_path / "notifications").mkdir()
    (tmp_path / "notifications" / "mini").symlink_to(MINI.parents[1] / "notifications" / "mini")
    (tmp_path / "workflows" / "mini.yaml").write_text(text_v2, "utf-8")
    service.load_workflow(tmp_path / "workflows" / "mini.yaml")
    plan = service.migrate("mini", state_map={}, actor="tester", dry_run=False)
    assert plan.applied
    service.fire("Aarhus", "accept", actor="sekretariat", role="secretariat")
    assert case.id is not None
    with store.read() as tx:
        taken = [e.record.transition for e in tx.history(case.id)]
    assert taken == [None, 0, None, 1]  # submit in version 1, accept in version 2
    assert [c.ok for c in service.verify()] == [True]


def test_verify_needs_a_case_or_all(store: SqlStore) -> None:
    code, output = _verify(store)
    assert code == 2
    assert "give a CASE or --all" in output


@pytest.mark.parametrize("backend", ["sqlite"])
def test_verify_passes_on_a_simulated_programme(store: SqlStore) -> None:
    """Timers fired in dispatch batches (the bulk path) chain like single changes."""
    store.close()
    result = run_simulation(
        SIM / "workflows" / "mini.yaml",
        start=dt.date(2024, 2, 15),
        end=dt.date(2024, 6, 30),
        participants_csv=SIM / "participants.csv",
        behaviour=SIM / "mini-behaviour.yaml",
        seed=3,
        db_url=store.url,
    )
    assert result.summary is not None and result.summary.cases == 6
    code, output = _verify(store, "--all")
    assert code == 0, output
    assert "6 case(s)" in output
    with store.read() as tx:
        kinds = {e.record.kind for c in tx.cases(CaseFilter()) for e in tx.history(c.id or 0)}
    assert EventKind.TIMER in kinds  # fired by the scheduler, written in batches
