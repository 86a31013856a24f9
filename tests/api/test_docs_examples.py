"""docs/api.md's examples, run as a reader runs them: each ``sh`` block of curl commands
with bash and the real curl, and the Python block with httpx, against the installed
``dk2020flow serve`` on the DK2020 programme, with a real token."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx2
import pytest

from dk2020flow.clock import SystemClock
from dk2020flow.service.core import open_service
from dk2020flow.settings import load_settings

from .conftest import build_programme
from .served import environment, serve

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _blocks(kind: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(DOC.read_text()) if lang == kind]


def test_the_examples_are_there() -> None:
    curls = [b for b in _blocks("sh") if b.lstrip().startswith("curl")]
    assert len(curls) >= 5
    assert len(_blocks("python")) == 1
    assert any("tokens create" in b for b in _blocks("sh"))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_and_httpx_examples_work(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build_programme(sqlite_url)
    with open_service(sqlite_url, clock=SystemClock(), settings=load_settings()) as service:
        secret = service.tokens.create(
            "kl-followup", ["follow_up", "secretariat"], created_by="docs"
        ).secret
    with serve(sqlite_url, tmp_path) as base:
        api = f"{base}/api/v1"
        for block in _blocks("sh"):
            if not block.lstrip().startswith("curl"):
                continue
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                env=environment({"API": api, "TOKEN": secret}),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, (block, done.stdout[-2000:], done.stderr[-2000:])
        # The Python example, with httpx2 standing in for httpx (the same API).
        monkeypatch.setenv("API", api)
        monkeypatch.setenv("TOKEN", secret)
        monkeypatch.setitem(sys.modules, "httpx", httpx2)
        (code,) = _blocks("python")
        namespace: dict[str, object] = {"__name__": "docs_example"}
        exec(compile(code, str(DOC), "exec"), namespace)
        client = namespace["api"]
        assert hasattr(client, "close")
        client.close()  # type: ignore[attr-defined]
    printed = capsys.readouterr().out
    assert "cases in round 2" in printed
    assert "declined" in printed
    assert isinstance(httpx2, ModuleType)
