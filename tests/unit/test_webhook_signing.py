"""Webhook signatures, event types and the subscription checks: pure functions."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from dk2020flow.engine.records import CaseSnapshot, EventKind, EventRecord
from dk2020flow.runtime.webhooks import (
    WebhookSettings,
    load_webhook_settings,
    origin_of,
    secret_key,
    sign,
)
from dk2020flow.service.webhooks import WebhookInputError, check_url, new_secret, parse_events
from dk2020flow.settings import SettingsError
from dk2020flow.store.sql.webhooks import notice_types

T0 = dt.datetime(2021, 3, 1, 9, 0, tzinfo=dt.UTC)


def test_signature_is_that_of_the_standard_webhooks_example() -> None:
    # The example of the Standard Webhooks specification (and of its reference libraries).
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secrets_are_standard_webhooks_secrets() -> None:
    first, second = new_secret(), new_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(secret_key(first)) == 32
    assert secret_key(first) == base64.b64decode(first[6:])
    assert secret_key("not-base64!") == b"not-base64!"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "is empty"),
        ("ftp://example.org/x", "not an http:// or https:// URL"),
        ("example.org/hook", "not an http:// or https:// URL"),
        ("https:///hook", "names no host"),
        ("https://user:pw@example.org/", "user name or password"),
        ("https://example.org/#frag", "#fragment"),
        ("https://example.org/a b", "space or a control character"),
        ("https://example.org:99999/", "cannot be read"),
        ("https://[::zz]/", "cannot be read"),
        ("https://example.org/" + "x" * 2000, "longer than 2000"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(WebhookInputError, match="URL") as refused:
        check_url(url)
    assert problem in str(refused.value)
    assert refused.value.field == "url"
    assert len(str(refused.value)) < 300


def test_good_urls_pass_and_give_their_origin() -> None:
    assert check_url(" http://127.0.0.1:8080/hooks?x=1 ") == "http://127.0.0.1:8080/hooks?x=1"
    assert origin_of("http://127.0.0.1:8080/hooks?x=1") == (
        ("http", "127.0.0.1", 8080),
        "/hooks?x=1",
    )
    assert origin_of("HTTPS://Example.org") == (("https", "example.org", 443), "/")
    assert check_url("https://[::1]:8443/h") == "https://[::1]:8443/h"


def test_event_types_are_checked_and_kept_once_in_order() -> None:
    assert parse_events("case.closed, case.opened,case.closed") == ("case.closed", "case.opened")
    assert parse_events(["case.opened", "case.data_changed"]) == (
        "case.opened",
        "case.data_changed",
    )
    with pytest.raises(WebhookInputError, match=r"unknown event type 'case\.nope'; choose from"):
        parse_events("case.opened,case.nope")
    with pytest.raises(WebhookInputError, match="at least one"):
        parse_events(" , ")


def _case(state: str, *, closed: bool = False) -> CaseSnapshot:
    return CaseSnapshot(
        id=1,
        workflow="w",
        definition_id=1,
        organisation_code="751",
        organisation_name="Aarhus",
        region="",
        state=state,
        epoch=1,
        cohort=None,
        data={},
        checklists={},
        entered_at=T0,
        opened_at=T0,
        version=2,
        closed=closed,
    )


def _event(kind: EventKind, source: str | None = "a", target: str | None = "a") -> EventRecord:
    return EventRecord(kind=kind, at=T0, actor="x", from_state=source, to_state=target)


def test_event_kinds_map_to_notice_types() -> None:
    records = [
        _event(EventKind.OPENED, None, "a"),
        _event(EventKind.TIMER),
        _event(EventKind.TRANSITION, "a", "a"),  # stays in its state: no notice
        _event(EventKind.DATA_SET),
        _event(EventKind.CHECKLIST),
        _event(EventKind.DEADLINE_EXTENDED),
        _event(EventKind.REFUSED),
        _event(EventKind.TRANSITION, "a", "b"),
        _event(EventKind.CHECKLIST_ANSWER),  # the organisation's answers
    ]
    assert notice_types(records, _case("b")) == [
        (0, "case.opened"),
        (3, "case.data_changed"),
        (4, "case.checklist_updated"),
        (5, "case.deadline_extended"),
        (7, "case.state_changed"),
        (8, "case.checklist_updated"),
    ]
    closing = [_event(EventKind.TRANSITION, "a", "b"), _event(EventKind.TRANSITION, "b", "end")]
    assert notice_types(closing, _case("end", closed=True)) == [
        (0, "case.state_changed"),
        (1, "case.state_changed"),
        (1, "case.closed"),
    ]


def test_bad_webhook_settings_are_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WebhookSettings().webhook_max_attempts == 12
    monkeypatch.setenv("DK2020FLOW_WEBHOOK_MAX_ATTEMPTS", "0")
    with pytest.raises(SettingsError, match="DK2020FLOW_WEBHOOK_MAX_ATTEMPTS"):
        load_webhook_settings()
    monkeypatch.delenv("DK2020FLOW_WEBHOOK_MAX_ATTEMPTS")
    monkeypatch.setenv("DK2020FLOW_WEBHOOK_LEASE_SECONDS", "5")
    with pytest.raises(SettingsError, match="at least 3 x webhook_timeout_seconds"):
        load_webhook_settings()
