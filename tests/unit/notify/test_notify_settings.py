"""Mail settings from the environment, and the transport they select."""

from __future__ import annotations

from pathlib import Path

import pytest

from dk2020flow.notify import (
    ConsoleTransport,
    FolderTransport,
    MailConfigError,
    MailSettings,
    SmtpTransport,
    transport_from_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DK2020FLOW_"):
            monkeypatch.delenv(name)


def test_default_is_the_folder_transport(tmp_path: object) -> None:
    transport = transport_from_settings(MailSettings())
    assert isinstance(transport, FolderTransport)
    assert str(transport.path) == "outbox"


def test_smtp_from_the_environment_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DK2020FLOW_MAIL_TRANSPORT", "smtp")
    monkeypatch.setenv("DK2020FLOW_SMTP_HOST", "smtp.example.dk")
    monkeypatch.setenv("DK2020FLOW_SMTP_PORT", "587")
    monkeypatch.setenv("DK2020FLOW_SMTP_STARTTLS", "true")
    monkeypatch.setenv("DK2020FLOW_SMTP_USERNAME", "dk2020")
    monkeypatch.setenv("DK2020FLOW_SMTP_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("DK2020FLOW_MAIL_SENDER", "dk2020@concito.example.dk")
    monkeypatch.setenv("PORT", "8080")  # unrelated variables are not read
    monkeypatch.setenv("HOST", "elsewhere")
    settings = MailSettings()
    assert settings.smtp_port == 587
    assert settings.smtp_host == "smtp.example.dk"
    assert settings.smtp_starttls is True
    assert settings.mail_sender == "dk2020@concito.example.dk"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    assert "hunter2" not in str(settings.model_dump())
    transport = transport_from_settings(settings)
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, transport.starttls) == ("smtp.example.dk", 587, True)
    assert "hunter2" not in repr(transport)


def test_smtp_without_a_host_is_a_clear_error() -> None:
    with pytest.raises(MailConfigError, match="DK2020FLOW_SMTP_HOST"):
        transport_from_settings(MailSettings(mail_transport="smtp"))


def test_username_without_password_is_a_clear_error() -> None:
    settings = MailSettings(mail_transport="smtp", smtp_host="x.dk", smtp_username="bob")
    with pytest.raises(MailConfigError, match="DK2020FLOW_SMTP_PASSWORD"):
        transport_from_settings(settings)


def test_tls_and_starttls_together_are_refused() -> None:
    with pytest.raises(MailConfigError, match="not both"):
        SmtpTransport(host="x.dk", use_tls=True, starttls=True)
    assert SmtpTransport(host="x.dk", use_tls=True).port == 465


def test_console_transport() -> None:
    assert isinstance(
        transport_from_settings(MailSettings(mail_transport="console")), ConsoleTransport
    )


def test_the_sender_setting_overrides_the_workflow_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from dk2020flow.service.mail import MailComposer
    from dk2020flow.settings import SettingsError, load_settings

    from .conftest import load_workflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DK2020FLOW_CONFIG", raising=False)
    workflow = load_workflow()
    assert MailComposer().sender(workflow) == (
        "DK2020-sekretariatet hos CONCITO",
        "dk2020@concito.example.dk",
    )
    monkeypatch.setenv("DK2020FLOW_MAIL_SENDER_NAME", "KL")
    assert MailComposer(sender=load_settings().sender_override()).sender(workflow) == (
        "KL",
        "dk2020@concito.example.dk",
    )
    monkeypatch.setenv("DK2020FLOW_MAIL_SENDER", "noreply@kl.example.dk")
    assert load_settings().sender_override() == ("KL", "noreply@kl.example.dk")
    monkeypatch.setenv("DK2020FLOW_MAIL_SENDER", "not an address")
    with pytest.raises(SettingsError, match="DK2020FLOW_MAIL_SENDER"):
        load_settings()
