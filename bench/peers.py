"""The peers of benchmark 1: what users pick instead, doing the same per-deadline work.

Each peer fires the same due deadlines as dk2020flow (the same N) and, per deadline,
does the writes and the render ``raw.write`` does (case moved on, two events, one mail
rendered and queued, timer retired) in one transaction, on the same schema; the batched
APScheduler peer fires them as dk2020flow does, a batch to a transaction. A peer whose
library is missing or cannot run here is reported as unavailable with the reason.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import sqlite3
import threading
import time
from typing import Any

import raw
from common import BENCH_DIR, Result, Workdir, fresh_pg, pg_dsn, phase, sqlite_path, unavailable
from workload import prepare

SECTION = "1. dispatch"
UNIT = "firings/s"
APS = "APScheduler 3, SQLAlchemyJobStore on SQLite, a job per deadline"
APS_BATCHED = "APScheduler 3, SQLAlchemyJobStore on SQLite, one batched sweep job"
SPIFF = "SpiffWorkflow 3, a BPMN timer event per deadline, SQLite"
PROC = "procrastinate 3 on PostgreSQL, a job per deadline"
BPMN_FILE = BENCH_DIR / "bpmn" / "deadline.bpmn"
BPMN_PROCESS = "deadline"


def _fired(url: str) -> int:
    with sqlite3.connect(sqlite_path(url)) as conn:
        return int(conn.execute("SELECT count(*) FROM timers WHERE status = 'fired'").fetchone()[0])


# --------------------------------------------------------------------- APScheduler 3


_local = threading.local()
_APS_URL: dict[str, str] = {}


def aps_job(timer_id: int, case_id: int, code: str, name: str) -> None:
    """The job of one deadline: the same writes, one transaction (module level: pickled)."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = raw.sqlite_connect(_APS_URL["url"])
    raw.fire_one_sqlite(conn, raw.Firing(timer_id, case_id, code, name), "aps")


def aps_sweep(batch: int) -> None:
    """The batched pattern's one job: every due deadline, ``batch`` to a transaction."""
    raw.run_sqlite(_APS_URL["url"], batch)


def apscheduler(work: Workdir, n: int) -> Result:
    """One job per deadline in APScheduler 3's SQLAlchemyJobStore on SQLite (the same file),
    all due in the past with a generous misfire grace time. The jobs are stored while the
    scheduler is paused; timed from ``resume()`` until every job ran."""
    name = APS
    if importlib.util.find_spec("apscheduler") is None:
        return unavailable(SECTION, name, UNIT, "apscheduler is not installed")
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    url = work.sqlite("apscheduler")
    prepare(url, n)
    _APS_URL["url"] = url
    rows = raw.due_sqlite(url)
    past = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
    done = threading.Event()
    ran = {"ok": 0, "error": 0}
    lock = threading.Lock()

    def listener(event: JobExecutionEvent) -> None:
        with lock:
            ran["error" if event.exception else "ok"] += 1
            if ran["ok"] + ran["error"] >= n:
                done.set()

    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)})
    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start(paused=True)
    with phase(f"APScheduler: storing {n} jobs"):
        for firing in rows:
            scheduler.add_job(
                aps_job,
                "date",
                run_date=past,
                args=tuple(firing),
                id=f"deadline-{firing.timer_id}",
                misfire_grace_time=10 * 365 * 86400,
            )
    start = time.perf_counter()
    scheduler.resume()
    finished = done.wait(timeout=600)
    seconds = time.perf_counter() - start
    scheduler.shutdown(wait=True)
    fired = _fired(url)
    note = "default executor (10 threads); jobs scheduled in the past, misfire_grace_time 10 years"
    if not finished or ran["error"] or fired != n:
        note += f"; only {fired} of {n} fired, {ran['error']} job errors"
    return Result(
        section=SECTION,
        name=name,
        value=fired / seconds,
        unit=UNIT,
        note=note,
        extra={"fired": fired, "seconds": seconds},
    )


def apscheduler_batched(work: Workdir, n: int, batch: int) -> Result:
    """The pattern dk2020flow uses, on APScheduler: one interval job in the same
    SQLAlchemyJobStore that, each time it runs, fires every due deadline in transactions
    of ``batch`` (``raw.run_sqlite``: the same writes and render). Timed from
    ``resume()`` until every deadline fired."""
    name = APS_BATCHED
    if importlib.util.find_spec("apscheduler") is None:
        return unavailable(SECTION, name, UNIT, "apscheduler is not installed")
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    url = work.sqlite("apscheduler_batched")
    prepare(url, n)
    _APS_URL["url"] = url
    done = threading.Event()
    errors: list[str] = []

    def listener(event: JobExecutionEvent) -> None:
        if event.exception:
            errors.append(repr(event.exception))
            done.set()
        elif _fired(url) >= n:
            done.set()

    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=url)})
    scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    scheduler.start(paused=True)
    scheduler.add_job(
        aps_sweep,
        "interval",
        seconds=1,
        args=(batch,),
        id="sweep",
        next_run_time=dt.datetime.now(dt.UTC),  # from the past it would replay every second
        misfire_grace_time=10 * 365 * 86400,
        coalesce=True,
        max_instances=1,
    )
    start = time.perf_counter()
    scheduler.resume()
    finished = done.wait(timeout=600)
    seconds = time.perf_counter() - start
    scheduler.shutdown(wait=True)
    fired = _fired(url)
    note = f"one interval job (1 s) firing what is due, {batch} to a transaction"
    if not finished or errors or fired != n:
        note += f"; only {fired} of {n} fired; {errors[:1]}"
    return Result(
        section=SECTION,
        name=name,
        value=fired / seconds,
        unit=UNIT,
        note=note,
        extra={"fired": fired, "seconds": seconds},
    )


# ---------------------------------------------------------------------- procrastinate


def procrastinate(n: int, pg_reason: str | None) -> Result:
    """Each deadline deferred as a procrastinate job scheduled in the past; one worker
    (``run_worker(wait=False)``, default concurrency) runs them; timed from the worker's
    start until the queue is empty."""
    name = PROC
    if importlib.util.find_spec("procrastinate") is None:
        return unavailable(
            SECTION, name, UNIT, "procrastinate is not installed (pip install '.[bench]')"
        )
    if pg_reason is not None:
        return unavailable(SECTION, name, UNIT, pg_reason)
    import procrastinate as pc

    url = fresh_pg("procrastinate")
    prepare(url, n)
    dsn = pg_dsn(url)
    import psycopg

    rows = raw.due_pg(url)
    app = pc.App(connector=pc.PsycopgConnector(conninfo=dsn))
    state: dict[str, Any] = {}

    @app.task(name="fire_deadline")
    def fire_deadline(timer_id: int, case_id: int, code: str, name: str) -> None:
        conn = state.get("conn")
        if conn is None:
            conn = state["conn"] = psycopg.connect(dsn)
        raw.fire_one_pg(conn, raw.Firing(timer_id, case_id, code, name), "procrastinate")

    past = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
    with app.open():
        app.schema_manager.apply_schema()
        with phase(f"procrastinate: deferring {n} jobs"):
            fire_deadline.configure(schedule_at=past).batch_defer(*(f._asdict() for f in rows))
        start = time.perf_counter()
        app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)
        seconds = time.perf_counter() - start
    if "conn" in state:
        state["conn"].close()
    with psycopg.connect(dsn) as conn:
        fired = int(
            conn.execute("SELECT count(*) FROM timers WHERE status = 'fired'").fetchone()[0]
        )
    note = "one worker, default concurrency (1), sync task"
    if fired != n:
        note += f"; only {fired} of {n} fired"
    return Result(
        section=SECTION,
        name=name,
        value=fired / seconds,
        unit=UNIT,
        note=note,
        extra={"fired": fired, "seconds": seconds},
    )


# ---------------------------------------------------------------------- SpiffWorkflow


def spiffworkflow(work: Workdir, n: int) -> Result:
    """A BPMN process per deadline (start → timer catch event → script task → end), each
    instance serialized in a table of the same SQLite file, as an application keeps them.
    Timed: for every instance, load it, let its due timer fire, run the script task (the
    same writes) and store it back, one transaction per firing."""
    name = SPIFF
    if importlib.util.find_spec("SpiffWorkflow") is None:
        return unavailable(
            SECTION, name, UNIT, "SpiffWorkflow is not installed (pip install '.[bench]')"
        )
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.util.task import TaskState

    url = work.sqlite("spiff")
    prepare(url, n)
    rows = raw.due_sqlite(url)
    firings = {f.timer_id: f for f in rows}
    conn = raw.sqlite_connect(url)
    current: dict[str, Any] = {}

    def fire(timer_id: int, case_id: int) -> None:
        raw.write(current["cursor"], [firings[timer_id]], sqlite=True, tag="spiff")

    engine = PythonScriptEngine(environment=TaskDataEnvironment({"fire": fire}))
    parser = BpmnParser()
    parser.add_bpmn_file(str(BPMN_FILE))
    spec = parser.get_spec(BPMN_PROCESS)
    serializer = BpmnWorkflowSerializer()
    with phase(f"SpiffWorkflow: starting {n} process instances"):
        # Due two seconds from now: setup takes longer, so every timer is due when timing starts.
        due_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
        conn.execute(
            "CREATE TABLE spiff_instances (timer_id INTEGER PRIMARY KEY, "
            "case_id INTEGER NOT NULL, state TEXT NOT NULL)"
        )
        conn.execute("BEGIN")
        for timer_id, case_id, _code, _name in rows:
            instance = BpmnWorkflow(spec, script_engine=engine)
            for task in instance.get_tasks(state=TaskState.READY):
                task.data.update(timer_id=timer_id, case_id=case_id, due_at=due_at)
            instance.do_engine_steps()
            conn.execute(
                "INSERT INTO spiff_instances VALUES (?, ?, ?)",
                (timer_id, case_id, serializer.serialize_json(instance)),
            )
        conn.execute("COMMIT")
        time.sleep(
            max(0.0, (dt.datetime.fromisoformat(due_at) - dt.datetime.now(dt.UTC)).total_seconds())
        )
    ids = [f.timer_id for f in rows]
    start = time.perf_counter()
    for timer_id in ids:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        (stored,) = cur.execute(
            "SELECT state FROM spiff_instances WHERE timer_id = ?", (timer_id,)
        ).fetchone()
        instance = serializer.deserialize_json(stored)
        instance.script_engine = engine
        current["cursor"] = cur
        instance.refresh_waiting_tasks()
        instance.do_engine_steps()
        cur.execute(
            "UPDATE spiff_instances SET state = ? WHERE timer_id = ?",
            (serializer.serialize_json(instance), timer_id),
        )
        cur.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    fired = _fired(url)
    note = "load instance, refresh_waiting_tasks, do_engine_steps, store instance; 1 tx per firing"
    if fired != n:
        note += f"; only {fired} of {n} fired"
    return Result(
        section=SECTION,
        name=name,
        value=fired / seconds,
        unit=UNIT,
        note=note,
        extra={"fired": fired, "seconds": seconds},
    )
