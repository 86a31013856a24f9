"""`dk2020flow webhooks add|list|remove|deliveries|retry`, run as the installed command, with
`scheduler run --once` delivering to a real HTTP receiver on loopback."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from .test_case_cli import Cli

ROOT = Path(__file__).resolve().parents[2]
DK2020 = ROOT / "workflows" / "dk2020.yaml"
SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")
OPENED = "2020-06-20T10:00+02:00"
RUN_AT = "2020-06-20T10:05+02:00"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    run("db", "upgrade")
    run("workflow", "load", str(DK2020))
    return run


class Receiver:
    """Records each POST's headers and body; answers 204."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    try:
        yield made
    finally:
        made.server.shutdown()
        made.server.server_close()
        made.thread.join()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(expected, headers["webhook-signature"])


def _json(cli: Cli, *args: str) -> Any:
    return cli.json(*args)


def _one_line_error(done: Any, *words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_bad_subscriptions_are_refused_and_change_nothing(cli: Cli) -> None:
    for url, words in (
        ("ftp://example.org/h", ("URL 'ftp://example.org/h'", "http:// or https://")),
        ("https://user:secret@example.org/h", ("user name or password",)),
        ("not a url", ("space",)),
    ):
        _one_line_error(cli("webhooks", "add", url, "--events", "case.opened", code=2), *words)
    _one_line_error(
        cli("webhooks", "add", "https://example.org/h", "--events", "case.openned", code=2),
        "--events",
        "unknown event type 'case.openned'",
        "case.state_changed",
    )
    _one_line_error(
        cli(
            "webhooks", "add", "https://example.org/h", "-e", "case.opened", "-d", "x" * 300, code=2
        ),
        "--description",
    )
    assert _json(cli, "webhooks", "list", "--all") == []
    _one_line_error(cli("webhooks", "remove", "7", code=1), "no webhook subscription 7")
    _one_line_error(cli("webhooks", "retry", "msg_nope", code=1), "no webhook delivery msg_nope")


def test_add_deliver_dead_letter_retry_and_remove(cli: Cli, receiver: Receiver) -> None:
    added = cli(
        "webhooks",
        "add",
        receiver.url,
        "--events",
        "case.opened,case.state_changed",
        "--description",
        "KL's dashboard",
    )
    secrets_shown = SECRET.findall(added.stdout)
    assert len(secrets_shown) == 1, added.stdout
    secret = secrets_shown[0]
    assert "not shown again" in added.stdout
    listed = cli("webhooks", "list")
    assert secret not in listed.stdout and secret[:10] in listed.stdout
    (hook,) = _json(cli, "webhooks", "list")
    assert hook["events"] == ["case.opened", "case.state_changed"]
    assert (hook["status"], hook["description"]) == ("active", "KL's dashboard")
    assert secret not in str(hook)
    dead_end = cli(
        "webhooks", "add", f"http://127.0.0.1:{_closed_port()}/h", "-e", "case.opened", "--json"
    )
    assert SECRET.fullmatch(json.loads(dead_end.stdout)["secret"])

    cli("case", "open", "dk2020", "Aarhus", "--role", "follow_up", "--now", OPENED)
    pending = _json(cli, "webhooks", "deliveries", "--status", "pending")
    assert isinstance(pending, list) and len(pending) == 2

    cli.env["DK2020FLOW_WEBHOOK_MAX_ATTEMPTS"] = "1"
    cli("scheduler", "run", "--once", "--now", RUN_AT)
    del cli.env["DK2020FLOW_WEBHOOK_MAX_ATTEMPTS"]

    ((headers, body),) = receiver.seen
    assert _signature_ok(secret, headers, body)
    assert headers["webhook-timestamp"] == str(int(dt.datetime.fromisoformat(RUN_AT).timestamp()))
    assert headers["content-type"] == "application/json"
    (sent,) = _json(cli, "webhooks", "deliveries", "--status", "sent")
    assert (sent["delivery_id"], sent["event_type"]) == (headers["webhook-id"], "case.opened")
    assert sent["body"].encode() == body
    (dead,) = _json(cli, "webhooks", "deliveries", "--status", "dead")
    assert "cannot connect to 127.0.0.1" in dead["last_error"]
    assert dead["last_error"].startswith("gave up after 1 attempts")
    table = cli("webhooks", "deliveries").stdout
    assert dead["delivery_id"] in table and "dead" in table

    status = cli("scheduler", "status", "--now", RUN_AT, code=1)
    assert "1 dead webhook delivery" in status.stdout
    assert "Webhooks:       pending 0, sent 1, dead 1" in status.stdout

    retried = cli("webhooks", "retry", dead["delivery_id"])
    assert "pending again" in retried.stdout
    _one_line_error(cli("webhooks", "retry", dead["delivery_id"], code=4), "is pending, not dead")
    removed = cli("webhooks", "remove", str(dead["subscription_id"]))
    assert "1 pending delivery(ies) given up" in removed.stdout
    assert "removed already" in cli("webhooks", "remove", str(dead["subscription_id"])).stdout
    assert [h["id"] for h in _json(cli, "webhooks", "list")] == [hook["id"]]
    everything = _json(cli, "webhooks", "list", "--all")
    assert [h["status"] for h in everything] == ["active", "removed"]
