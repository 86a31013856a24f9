"""Benchmark 8: uploading a 20 MB plan, beside a plain copy of the same bytes in the same run.

    python bench/run.py --only documents
    python bench/documents.py             # the same, on its own

A PDF-shaped file of 20 MiB is uploaded as DK2020's ``draft_plan`` of Aarhus's case:

- through the service, ``Service.documents.attach`` — read in chunks, hashed, its type
  read from its bytes, written to its storage, recorded with its row and history
  event — to the database storage (SQLite, and PostgreSQL when it answers) and to the
  directory storage;
- through the portal's HTTP upload route, ``POST /portal/cases/{id}/documents/draft_plan``:
  a multipart request streamed over a real socket (httpx, the file read in chunks) to
  ``dk2020flow serve`` in its own process, signed in as Aarhus's contact person (a
  session made through the service, as in bench/portal.py) with the CSRF token the
  portal's page set; Starlette spools the part to a temporary file, then the route calls
  the same ``attach`` (database storage, SQLite and PostgreSQL);

and the same file is copied with ``shutil.copyfile``. The samples are interleaved (copy,
each upload, copy, each upload, …) after one warm-up round, and each figure is their
median with the min–max. Every path writes the 20 MiB to the same disk, so MB/s moves
with the disk and its page cache; the ratio upload / copy of the same run is what counts.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_DIR, Result, Workdir, drop_pg, fresh_pg, pg_available, unavailable

SECTION = "8. documents"
SIZE = 20 * 1024 * 1024
REPEAT = 3
WORKFLOW = REPO_DIR / "workflows" / "dk2020.yaml"
START = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)
AARHUS = "751"
COPY = "plain file copy (shutil.copyfile), 20 MiB"


def _plan(path: Path) -> None:
    from dk2020flow.service.filetypes import sample

    head = sample("pdf", "Klimahandlingsplan")
    with path.open("wb") as stream:
        stream.write(head)
        block = b"0123456789abcdef" * 4096
        left = SIZE - len(head)
        while left > 0:
            stream.write(block[:left])
            left -= len(block)


def _mb_per_s(seconds: float) -> float:
    return SIZE / 1_000_000 / seconds


@dataclass
class Uploader:
    label: str
    upload: Callable[[], object]
    close: Callable[[], None]
    note: str
    seconds: list[float] = field(default_factory=list)


def _service(url: str, work: Workdir, storage: str) -> tuple[Any, int]:
    """A service on a migrated ``url`` with DK2020 loaded and Aarhus's case in
    ``drafting`` (where the draft plan is uploaded); (the service, the case id)."""
    from dk2020flow.clock import ManualClock
    from dk2020flow.service import open_service, upgrade_database
    from dk2020flow.settings import Settings

    upgrade_database(url)
    folder = work.path / f"documents-{storage}"
    folder.mkdir(exist_ok=True)
    settings = Settings(database_url=url, document_storage=storage, document_directory=folder)
    service = open_service(url, clock=ManualClock(START), settings=settings)
    service.load_workflow(WORKFLOW, now=START)
    case = service.open_case(
        "dk2020",
        "Aarhus",
        actor="bench",
        role="follow_up",
        cohort="round1",
        state="drafting",
        reason="bench",
    )
    return service, int(case.id or 0)


def _service_uploader(label: str, url: str, work: Workdir, storage: str, plan: Path) -> Uploader:
    service, _case_id = _service(url, work, storage)

    def upload() -> object:
        with plan.open("rb") as stream:
            return service.documents.attach(
                "Aarhus",
                "draft_plan",
                stream,
                filename="klimaplan.pdf",
                actor="bench",
                role="contact_person",
                workflow="dk2020",
            )

    def close() -> None:
        service.close()
        if url.startswith("postgresql"):
            drop_pg(url)

    note = "checked, hashed, stored with its row and event"
    return Uploader(f"upload 20 MiB, {label}", upload, close, note)


def _http_uploader(label: str, url: str, work: Workdir, plan: Path) -> Uploader:
    """The portal's upload route on ``dk2020flow serve``, signed in as Aarhus's contact."""
    import httpx2 as httpx
    from http_load import SESSION_COOKIE
    from portal import sign_in_participants

    import web

    service, case_id = _service(url, work, "database")
    service.close()
    token = sign_in_participants(url, [AARHUS], START, work.path)[AARHUS]
    server = web.console_server(url, work.path / f"upload-{label}.log", now=START)
    server.wait_ready("/healthz")
    http = httpx.Client(base_url=server.base, cookies={SESSION_COOKIE: token}, timeout=120.0)
    page = http.get(f"/portal/cases/{case_id}")
    csrf = http.cookies.get("dk2020flow_csrf") or ""
    if page.status_code != 200 or not csrf:
        server.stop()
        raise RuntimeError(f"the portal's case page answered {page.status_code}: {server.tail()}")

    def upload() -> object:
        with plan.open("rb") as stream:
            response = http.post(
                f"/portal/cases/{case_id}/documents/draft_plan",
                data={"csrf_token": csrf},
                files={"file": ("klimaplan.pdf", stream, "application/pdf")},
                follow_redirects=False,
            )
        if response.status_code != 303:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:200]}")
        return response

    def close() -> None:
        http.close()
        server.stop()
        if url.startswith("postgresql"):
            drop_pg(url)

    note = "multipart POST over a socket to dk2020flow serve, then the same attach"
    return Uploader(f"HTTP upload 20 MiB, {label}", upload, close, note)


def run(work: Workdir, repeat: int = REPEAT) -> list[Result]:
    plan = work.path / "klimaplan.pdf"
    _plan(plan)
    copies = work.path / "copy.pdf"
    results: list[Result] = []
    reason = pg_available()
    makers: list[Callable[[], Uploader]] = [
        lambda: _service_uploader(
            "database storage, SQLite", work.sqlite("documents"), work, "database", plan
        ),
        lambda: _service_uploader(
            "directory storage (SQLite rows)", work.sqlite("documents-dir"), work, "directory", plan
        ),
        lambda: _http_uploader(
            "portal, database storage, SQLite", work.sqlite("upload"), work, plan
        ),
    ]
    if reason is None:
        makers += [
            lambda: _service_uploader(
                "database storage, PostgreSQL", fresh_pg("documents"), work, "database", plan
            ),
            lambda: _http_uploader(
                "portal, database storage, PostgreSQL", fresh_pg("upload"), work, plan
            ),
        ]
    else:
        for label in ("upload 20 MiB, database storage, PostgreSQL", "HTTP upload 20 MiB, PG"):
            results.append(unavailable(SECTION, label, "MB/s", reason))
    uploaders: list[Uploader] = []
    copy_seconds: list[float] = []
    try:
        for make in makers:
            uploaders.append(make())
        for round_ in range(repeat + 1):  # round 0 warms caches and is not counted
            start = time.perf_counter()
            shutil.copyfile(plan, copies)
            if round_:
                copy_seconds.append(time.perf_counter() - start)
            for uploader in uploaders:
                start = time.perf_counter()
                uploader.upload()
                if round_:
                    uploader.seconds.append(time.perf_counter() - start)
    finally:
        for uploader in uploaders:
            uploader.close()
    copy = statistics.median(copy_seconds)
    disk = "moves with the disk and its page cache"
    results.insert(
        0,
        Result(
            section=SECTION,
            name=COPY,
            value=_mb_per_s(copy),
            unit="MB/s",
            note=f"median of {repeat} interleaved with the uploads; {disk}",
            samples=[_mb_per_s(s) for s in copy_seconds],
        ),
    )
    for uploader in uploaders:
        seconds = statistics.median(uploader.seconds)
        label = uploader.label.split(", ", 1)[1]
        results += [
            Result(
                section=SECTION,
                name=uploader.label,
                value=_mb_per_s(seconds),
                unit="MB/s",
                note=f"median of {repeat}, interleaved; {uploader.note}; {disk}",
                samples=[_mb_per_s(s) for s in uploader.seconds],
            ),
            Result(
                section=SECTION,
                name=f"{uploader.label.split(' 20 MiB')[0]} / plain copy, {label}",
                value=seconds / copy,
                unit="x slower",
                note="same run, same bytes, same disk",
                samples=[a / b for a, b in zip(uploader.seconds, copy_seconds, strict=True)],
            ),
        ]
    return results


if __name__ == "__main__":
    work = Workdir()
    try:
        for result in run(work):
            value = "–" if result.value is None else f"{result.value:,.1f}"
            print(f"{result.name}: {value} {result.unit} {result.spread} ({result.note})")
    finally:
        work.cleanup()
