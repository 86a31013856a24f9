"""schemathesis runs the served OpenAPI document against the running application, on
SQLite and on PostgreSQL: no server error, and no answer that breaks the document
(status codes, content types, headers, bodies), nor one that accepts what the document
forbids.

The server is the installed ``dk2020flow serve`` on a loopback port, over the DK2020
programme, with a real token (``Service.tokens.create``) of the roles that act most
(``secretariat`` and ``follow_up``), so generated changes reach the engine. The rate
limit is raised for the run (schemathesis sends thousands of requests a minute).

Left out: ``positive_data_acceptance``, which expects every request the document allows
to be accepted (2xx) — but a trigger the engine refuses in the case's state (409), or
data the workflow refuses (422), is the API working, and cannot be written in a schema.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dk2020flow.clock import SystemClock
from dk2020flow.service.core import open_service
from dk2020flow.settings import load_settings

from .conftest import build_programme
from .served import environment, serve

SEED = "20201202"
EXAMPLES = "15"


def _token(url: str) -> str:
    with open_service(url, clock=SystemClock(), settings=load_settings()) as service:
        made = service.tokens.create(
            "schemathesis", ["secretariat", "follow_up"], created_by="test"
        )
        return made.secret


@pytest.mark.slow
def test_the_running_api_conforms_to_its_document(db_url: str, tmp_path: Path) -> None:
    build_programme(db_url)
    secret = _token(db_url)
    with serve(db_url, tmp_path, env={"DK2020FLOW_API_RATE_LIMIT": "1000000"}) as base:
        done = subprocess.run(
            [
                "schemathesis",
                "run",
                f"{base}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {secret}",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                EXAMPLES,
                "--seed",
                SEED,
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--no-color",
                "--request-timeout",
                "30",
            ],
            cwd=tmp_path,
            env=environment({"SCHEMATHESIS_TELEMETRY": "false", "PATH": os.environ["PATH"]}),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    summary = done.stdout[-6000:]
    assert done.returncode == 0, summary + done.stderr[-2000:]
    assert "Server error" not in done.stdout
    assert "generated" in done.stdout, summary
