"""FolderTransport and ConsoleTransport write real files and real text."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import io
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dk2020flow.notify import (
    ConsoleTransport,
    FolderTransport,
    MimeMessage,
    RenderedMail,
    SendOutcome,
    TemporaryDeliveryError,
    build_message,
    envelope_recipients,
    make_message_id,
)

CPH = ZoneInfo("Europe/Copenhagen")


def _message(outbox_id: int, subject: str = "Invitation til DK2020") -> MimeMessage:
    return build_message(
        RenderedMail(subject=subject, text="Kære Mette\n", html="<p>Kære Mette</p>\n"),
        sender=("DK2020", "dk2020@concito.example.dk"),
        to=[("Mette Lindholm", "mette@aarhus.example.dk")],
        message_id=make_message_id(outbox_id, "dk2020.example.dk", 751),
        date=dt.datetime(2020, 8, 17, 9, 0, tzinfo=CPH),
    )


def test_one_eml_per_message_named_after_the_message_id(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    transport = FolderTransport(folder)
    message = _message(42)
    result = asyncio.run(transport.send(message, envelope_recipients(message)))
    assert result.outcome is SendOutcome.SENT
    assert result.accepted == ("mette@aarhus.example.dk",)
    assert [p.name for p in folder.iterdir()] == ["outbox-42.751@dk2020.example.dk.eml"]
    written = (folder / "outbox-42.751@dk2020.example.dk.eml").read_bytes()
    assert written == message.as_bytes()
    parsed = email.message_from_bytes(written, policy=policy.default)
    assert parsed["Message-ID"] == "<outbox-42.751@dk2020.example.dk>"
    assert parsed["Subject"] == "Invitation til DK2020"


def test_a_resend_overwrites_the_same_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    transport = FolderTransport(tmp_path)

    async def run() -> None:
        await transport.open()
        for subject in ("first try", "second try"):
            message = _message(7, subject)
            await transport.send(message, envelope_recipients(message))
        await transport.close()

    asyncio.run(run())
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["outbox-7.751@dk2020.example.dk.eml"]
    content = (tmp_path / files[0]).read_bytes()
    assert b"Subject: second try" in content
    assert b"first try" not in content


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    # The target name is taken by a directory, so the final rename fails.
    (tmp_path / "outbox-9.751@dk2020.example.dk.eml").mkdir()
    (tmp_path / "outbox-9.751@dk2020.example.dk.eml" / "keep").write_text("x")
    transport = FolderTransport(tmp_path)
    message = _message(9)
    recipients = envelope_recipients(message)
    with pytest.raises(TemporaryDeliveryError, match="cannot write"):
        asyncio.run(transport.send(message, recipients))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox-9.751@dk2020.example.dk.eml"]


def test_an_unwritable_folder_is_a_temporary_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    transport = FolderTransport(blocker / "outbox")
    message = _message(1)
    with pytest.raises(TemporaryDeliveryError, match="cannot create the mail folder"):
        asyncio.run(transport.send(message, envelope_recipients(message)))


def test_console_transport_prints_headers_and_text() -> None:
    out = io.StringIO()
    message = _message(3)
    result = asyncio.run(ConsoleTransport(out).send(message, envelope_recipients(message)))
    assert result.outcome is SendOutcome.SENT
    printed = out.getvalue()
    assert "Message-ID: <outbox-3.751@dk2020.example.dk>" in printed
    assert "Subject: Invitation til DK2020" in printed
    assert "To: Mette Lindholm <mette@aarhus.example.dk>" in printed
    assert "Envelope-To: mette@aarhus.example.dk\n\nKære Mette\n" in printed
