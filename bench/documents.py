"""Benchmark 8: uploading a 20 MB plan, beside a plain copy of the same bytes in the same run.

    python bench/run.py --only documents
    python bench/documents.py             # the same, on its own

A PDF-shaped file of 20 MiB is uploaded as DK2020's ``draft_plan`` through
``Service.documents.attach`` — read in chunks, hashed, its type read from its bytes,
written to its storage, recorded with its row and history event — to the database storage
(SQLite, and PostgreSQL when it answers) and to the directory storage; and the same file is
copied with ``shutil.copyfile``. Each is timed a few times (median); the ratio upload / copy
is what counts on a shared machine.
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO_DIR, Result, Workdir, drop_pg, fresh_pg, pg_available, unavailable

SECTION = "8. documents"
SIZE = 20 * 1024 * 1024
REPEAT = 3
WORKFLOW = REPO_DIR / "workflows" / "dk2020.yaml"


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


def _median_seconds(fn: Callable[[], object]) -> float:
    fn()  # warm-up: caches, the first page of the file
    samples = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _mb_per_s(seconds: float) -> float:
    return SIZE / 1_000_000 / seconds


def _uploader(
    url: str, work: Workdir, storage: str, plan: Path
) -> tuple[Callable[[], object], Callable[[], None]]:
    from dk2020flow.clock import ManualClock
    from dk2020flow.service import open_service, upgrade_database
    from dk2020flow.settings import Settings

    upgrade_database(url)
    folder = work.path / f"documents-{storage}"
    folder.mkdir(exist_ok=True)
    settings = Settings(database_url=url, document_storage=storage, document_directory=folder)
    start = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)
    service = open_service(url, clock=ManualClock(start), settings=settings)
    service.load_workflow(WORKFLOW, now=start)
    service.open_case(
        "dk2020",
        "Aarhus",
        actor="bench",
        role="follow_up",
        cohort="round1",
        state="drafting",
        reason="bench",
    )

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

    return upload, service.close


def run(work: Workdir) -> list[Result]:
    plan = work.path / "klimaplan.pdf"
    _plan(plan)
    copies = work.path / "copy.pdf"
    copy = _median_seconds(lambda: shutil.copyfile(plan, copies))
    results = [
        Result(
            section=SECTION,
            name="plain file copy (shutil.copyfile), 20 MiB",
            value=_mb_per_s(copy),
            unit="MB/s",
            note=f"median of {REPEAT}",
        )
    ]
    targets: list[tuple[str, str, Callable[[], str]]] = [
        ("database storage, SQLite", "database", lambda: work.sqlite("documents")),
        ("directory storage (SQLite rows)", "directory", lambda: work.sqlite("documents-dir")),
    ]
    reason = pg_available()
    if reason is None:
        targets.append(("database storage, PostgreSQL", "database", lambda: fresh_pg("documents")))
    else:
        results.append(
            unavailable(SECTION, "upload 20 MiB, database storage, PostgreSQL", "MB/s", reason)
        )
    for label, storage, url_of in targets:
        url = url_of()
        upload, close = _uploader(url, work, storage, plan)
        try:
            seconds = _median_seconds(upload)
        finally:
            close()
            if url.startswith("postgresql"):
                drop_pg(url)
        speed = _mb_per_s(seconds)
        results += [
            Result(
                section=SECTION,
                name=f"upload 20 MiB, {label}",
                value=speed,
                unit="MB/s",
                note=f"median of {REPEAT}; checked, hashed, stored with its row and event",
            ),
            Result(
                section=SECTION,
                name=f"upload / plain copy, {label}",
                value=seconds / copy,
                unit="x slower",
                note="same run",
            ),
        ]
    return results


if __name__ == "__main__":
    work = Workdir()
    try:
        for result in run(work):
            value = "–" if result.value is None else f"{result.value:,.1f}"
            print(f"{result.name}: {value} {result.unit} ({result.note})")
    finally:
        work.cleanup()
