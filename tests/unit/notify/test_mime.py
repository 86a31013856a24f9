"""The MIME writer against the email package: the same bytes for the same message.

The oracle is the former ``build_message``: an ``EmailMessage`` (``policy.default``)
written with ``as_bytes(policy=policy.SMTP)``, its boundaries set to the ones the
writer chose (the email package draws them at random).
"""

from __future__ import annotations

import datetime as dt
import email
import re
from collections.abc import Mapping, Sequence
from email import policy
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import Policy
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from dk2020flow.notify import (
    CalendarAttachment,
    CalendarMethod,
    MessageError,
    MimeMessage,
    RenderedMail,
    build_message,
    envelope_recipients,
    mime,
    one_line,
    validate_address,
)
from dk2020flow.notify.message import Mailbox

# ----------------------------------------------------------------------------- the oracle


def _address(mailbox: Mailbox) -> Address:
    name, address = mailbox
    username, _, domain = validate_address(address).rpartition("@")
    return Address(display_name=one_line(name or ""), username=username, domain=domain)


def stdlib_message(
    mail: RenderedMail,
    *,
    sender: Mailbox,
    to: Sequence[Mailbox],
    message_id: str,
    date: dt.datetime,
    cc: Sequence[Mailbox] = (),
    reply_to: Mailbox | None = None,
    language: str | None = None,
    calendar: CalendarAttachment | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """The message as the email package built it before the writer."""
    message = EmailMessage(policy=policy.default)
    message["From"] = [_address(sender)]
    message["To"] = [_address(m) for m in to]
    if cc:
        message["Cc"] = [_address(m) for m in cc]
    if reply_to is not None:
        message["Reply-To"] = [_address(reply_to)]
    message["Subject"] = one_line(mail.subject) or "(no subject)"
    message["Date"] = email.utils.format_datetime(date)
    message["Message-ID"] = message_id
    message["MIME-Version"] = "1.0"
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(mail.text, cte="quoted-printable")
    message.add_alternative(mail.html, subtype="html", cte="quoted-printable")
    if calendar is not None:
        message.add_attachment(
            calendar.content.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"),
            maintype="text",
            subtype="calendar",
            cte="base64",
            filename=calendar.filename,
            params={"method": calendar.method.value, "charset": "utf-8"},
        )
    if language:
        message["Content-Language"] = one_line(language)
    return message


def stdlib_bytes(
    message: EmailMessage, built: MimeMessage, write_policy: Policy = policy.SMTP
) -> bytes:
    """``as_bytes`` with the boundaries of ``built``, and with each unstructured header
    the email package folds right after the colon taken from ``built`` once
    :func:`check_first_word_fold` accepts it (the one place the writer differs)."""
    message.set_boundary(built.root.boundary)
    inner = built.root.parts[0]
    if inner.parts:
        alternative = message.get_payload(0)
        assert isinstance(alternative, EmailMessage)
        alternative.set_boundary(inner.boundary)
    data = message.as_bytes(policy=write_policy)
    ours = built.as_bytes(utf8=write_policy is policy.SMTPUTF8)
    return _mend_header_blocks(data, ours)


def _header_block(data: bytes, name: str) -> re.Match[bytes] | None:
    """The first ``name:`` header of ``data`` (the top level's), with its folded lines."""
    return re.search(
        rb"^" + re.escape(name.encode()) + rb":[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n", data, re.M
    )


def _mend_header_blocks(theirs: bytes, ours: bytes) -> bytes:
    names = re.findall(rb"^([A-Za-z0-9-]+):\r\n ", theirs.split(b"\r\n\r\n--", 1)[0], re.M)
    for raw in dict.fromkeys(names):
        name = raw.decode("ascii")
        their, our = _header_block(theirs, name), _header_block(ours, name)
        if not _unstructured(name) or their is None or our is None:
            continue
        check_first_word_fold(name, their.group().decode("utf-8"), our.group().decode("utf-8"))
        theirs = theirs[: their.start()] + our.group() + theirs[their.end() :]
    return theirs


def _unstructured(name: str) -> bool:
    return issubclass(HeaderRegistry()[name], UnstructuredHeader)


def _read_header(name: str, folded: str) -> str:
    parsed = email.message_from_string(folded + "\r\n", policy=policy.default)
    return str(parsed[name])


def check_first_word_fold(name: str, theirs: str, ours: str) -> None:
    """The email package folded ``name`` right after the colon (``theirs``); ``ours`` must
    say the same, keep the first word on the first line (issue 15, point 14) and
    keep every other line within 78 characters."""
    assert theirs.startswith(f"{name}:\r\n ")
    first, *rest = ours.removesuffix("\r\n").split("\r\n")
    assert re.match(rf"{re.escape(name)}: [^ ]", first), ours
    assert all(line.startswith(" ") and len(line) <= 78 for line in rest), ours
    assert len(first) <= 78 or " " not in first[len(name) + 2 :], ours
    # The same words (the email package's own fold may read back with a doubled space).
    assert _read_header(name, ours).split() == _read_header(name, theirs).split()
    assert not _read_header(name, ours).startswith(" ")


# ----------------------------------------------------------------------------- strategies

FRAGMENTS = [
    "æ",
    "ø",
    "å",
    "Æ",
    "Ø",
    "Å",
    "København",
    "Aabenraa",
    " – ",
    "😀",
    "🇩🇰",
    "=",
    "==",
    "=3D",
    "=?",
    "?=",
    "=?utf-8?q?K=C3=B8ge?=",
    "_",
    ".",
    ".\n",
    "\n.\n",
    "From ",
    "\nFrom here",
    " ",
    "  ",
    "\t",
    "\u00a0",
    "\u2003",
    "\r\n",
    "\n",
    "\r",
    "\u2028",
    "\x0b",
    "\x00",
    "\x85",
    "x" * 77,
    "y" * 78,
    "z" * 79,
    "Overenskomstforhandlingsudvalgsformandsposten" * 2,
    "a" * 200,
    "(",
    ")",
    '"',
    ",",
    ";",
    ":",
    "<",
    ">",
    "@",
    "\\",
    "'",
    "klimaplaner",
    "Kommune",
    "DK2020",
]
LETTERS = st.characters(blacklist_categories=["Cs"])
piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(LETTERS, max_size=12))
texts = st.lists(piece, max_size=40).map("".join)
long_texts = st.lists(piece, max_size=200).map("".join)
ADDRESSES = [
    "mette.lindholm@aarhus.example.dk",
    "borgmester@koebenhavn.example.dk",
    "klima@ballerup.example.dk",
    "dk2020-hovedstaden@kkr.example.dk",
    "søren@rm.example.dk",
    "a@b.dk",
    "x" * 60 + "@" + "very-long-organisation-name.example.dk",
]
mailboxes = st.tuples(texts, st.sampled_from(ADDRESSES))
message_ids = st.one_of(
    st.builds(
        "<dk2020flow.{}.{}@dk2020flow.local>".format,
        st.integers(1, 10**9),
        st.integers(20200101, 20231231),
    ),
    st.from_regex(r"<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]{1,70}@[A-Za-z0-9.\-]{1,40}>", fullmatch=True),
)
offsets = st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))
dates = st.datetimes(
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.one_of(st.timezones(), st.builds(dt.timezone, offsets)),
)
header_names = st.from_regex(r"X-[A-Za-z0-9][A-Za-z0-9\-]{0,50}", fullmatch=True)
header_values = texts.filter(lambda value: not re.search(r"[\x00-\x1f\x7f\u2028\u2029\x85]", value))
calendars = st.builds(
    CalendarAttachment,
    content=long_texts,
    method=st.sampled_from(CalendarMethod),
    filename=st.one_of(
        st.just("invitation.ics"),
        st.sampled_from(["møde.ics", 'a "quoted" name.ics', "x" * 90 + ".ics", ""]),
        st.text(LETTERS, max_size=30),
    ),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[RenderedMail, dict[str, Any]]:
    mail = RenderedMail(subject=draw(texts), text=draw(long_texts), html=draw(long_texts))
    arguments: dict[str, Any] = {
        "sender": draw(mailboxes),
        "to": draw(st.lists(mailboxes, min_size=1, max_size=3)),
        "cc": draw(st.lists(mailboxes, max_size=3)),
        "reply_to": draw(st.none() | mailboxes),
        "message_id": draw(message_ids),
        "date": draw(dates),
        "language": draw(st.one_of(st.none(), st.sampled_from(["da", "en", ""]), texts)),
        "calendar": draw(st.none() | calendars),
        "headers": draw(st.dictionaries(header_names, header_values, max_size=3)),
    }
    # The email package refuses a second header of the same name in any case.
    names = [name.lower() for name in arguments["headers"]]
    assume(len(set(names)) == len(names))
    return mail, arguments


def _outcome(make: Any) -> bytes | type[BaseException]:
    try:
        data = make()
    except Exception as exc:
        return type(exc)
    assert isinstance(data, bytes)
    return data


# ----------------------------------------------------------------------------- bytes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_the_writer_writes_what_the_email_package_writes(
    case: tuple[RenderedMail, dict[str, Any]],
) -> None:
    mail, arguments = case
    try:
        built = build_message(mail, **arguments)
    except MessageError:
        raise
    except (ValueError, TypeError):
        # Then the email package refused it too (a header it cannot write).
        with pytest.raises((ValueError, TypeError)):
            stdlib_message(mail, **arguments).as_bytes(policy=policy.SMTP)
        return
    for write_policy, utf8 in ((policy.SMTP, False), (policy.SMTPUTF8, True)):
        expected = _outcome(
            lambda wp=write_policy: stdlib_bytes(stdlib_message(mail, **arguments), built, wp)
        )
        assert _outcome(lambda u=utf8: built.as_bytes(utf8=u)) == expected


def _dk2020_mail(subject: str) -> tuple[RenderedMail, dict[str, Any]]:
    text = (
        "Kære borgmester Borgmesteren i København,\n\nKL, Realdania og de fem regioner inviterer "
        "København Kommune til at deltage i DK2020 – klimaplaner i hele Danmark.\n"
    )
    html = (
        '<!DOCTYPE html>\n<html lang="da">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{subject}</title>\n</head>\n"
        '<body style="margin:0;padding:0;background:#f3f5f2;font-family:Arial,Helvetica,'
        'sans-serif;color:#1f2a22;">\n<p>Kære borgmester</p>   \n</body>\n</html>\n'
    )
    return RenderedMail(subject=subject, text=text, html=html), {
        "sender": ("DK2020", "dk2020flow@example.org"),
        "to": [("Borgmesteren i København", "borgmester@koebenhavn.example.dk")],
        "cc": [("Klimakoordinator, København Kommune", "klima@koebenhavn.example.dk")],
        "message_id": "<dk2020flow.1.20200531@dk2020flow.local>",
        "date": dt.datetime(2020, 6, 2, 6, 0, tzinfo=dt.UTC),
        "language": "da",
        "headers": {"X-Dk2020flow-Outbox-Id": "1"},
    }


@pytest.mark.parametrize(
    "subject",
    [
        "Invitation til DK2020 – klimaplaner i hele Danmark (København Kommune)",
        "Invitation: Workshop 2: Handlinger og CAPF-krav, 10. juni 2021",
        "Påmindelse: svar senest 31. august",
        "Frist overskredet: klimaplanen for Lyngby-Taarbæk Kommune skulle være indsendt senest",
        "CAPF-screening af Faaborg-Midtfyn Kommunes klimaplan: planen skal revideres",
        "Anmodning om CAPF-godkendelse: Guldborgsund Kommunes klimahandlingsplan",
        "Æ" * 100,
        "🇩🇰 " * 40,
        "x" * 200,
    ],
)
def test_dk2020_messages_are_byte_identical(subject: str) -> None:
    mail, arguments = _dk2020_mail(subject)
    calendar = CalendarAttachment(
        content="BEGIN:VCALENDAR\nMETHOD:REQUEST\nEND:VCALENDAR\n", method=CalendarMethod.REQUEST
    )
    for attachment in (None, calendar):
        built = build_message(mail, calendar=attachment, **arguments)
        expected = stdlib_bytes(stdlib_message(mail, calendar=attachment, **arguments), built)
        assert built.as_bytes() == expected


# ----------------------------------------------------------------------------- read back

readable = (
    st.lists(
        st.one_of(
            st.sampled_from([f for f in FRAGMENTS if "=?" not in f and "?=" not in f]),
            st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=12),
        ),
        max_size=40,
    )
    .map("".join)
    .filter(lambda text: "=?" not in text)
)


# Display names short enough for one line. (A longer non-ASCII one is folded into
# encoded words with a space between them, as RFC 2047 allows; the email package's
# parser, unlike mail programs, keeps that space: "Lyngb y-Taarbæk".)
names = st.lists(
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzæøåÆØÅ-.,'()\""), min_size=1, max_size=12),
    max_size=3,
).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(
    subject=readable,
    name=names,
    text=long_texts,
    html=long_texts,
    ics=long_texts,
    outbox_id=st.integers(1, 10**12),
)
def test_the_email_package_reads_back_what_was_given(
    subject: str, name: str, text: str, html: str, ics: str, outbox_id: int
) -> None:
    calendar = CalendarAttachment(content=ics, method=CalendarMethod.PUBLISH)
    built = build_message(
        RenderedMail(subject=subject, text=text, html=html),
        sender=("DK2020", "dk2020@concito.example.dk"),
        to=[(name, "mette.lindholm@aarhus.example.dk")],
        cc=[("Søren Kjær", "soren.kjaer@rm.example.dk")],
        message_id=f"<outbox-{outbox_id}@dk2020.example.dk>",
        date=dt.datetime(2021, 3, 28, 1, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        language="da",
        calendar=calendar,
        headers={"X-Dk2020flow-Outbox-Id": str(outbox_id)},
    )
    parsed = BytesParser(policy=policy.default).parsebytes(built.as_bytes())
    assert isinstance(parsed, EmailMessage)
    # (A subject that only fits on a line of its own comes back with the space before it;
    # a space between two encoded words is dropped by RFC 2047 decoding.)
    subject_back, subject_given = parsed["Subject"].lstrip(" "), one_line(subject) or "(no subject)"
    if subject_back != subject_given:
        assert re.search(rb"\?=\s+=\?", built.as_bytes().split(b"\r\n\r\n", 1)[0])
        assert subject_back.replace(" ", "") == subject_given.replace(" ", "")
    [to] = parsed["To"].addresses
    assert (to.display_name, to.addr_spec) == (one_line(name), "mette.lindholm@aarhus.example.dk")
    assert parsed["Message-ID"] == built.message_id
    assert parsed["X-Dk2020flow-Outbox-Id"] == str(outbox_id)
    assert parsed["Date"].datetime == dt.datetime(2021, 3, 28, 0, 59, 59, tzinfo=dt.UTC)
    assert parsed["Content-Language"] == "da"
    assert parsed.get_content_type() == "multipart/mixed"
    for subtype, given_text in (("plain", text), ("html", html)):
        body = parsed.get_body((subtype,))
        assert body is not None
        lines = given_text.encode("utf-8").splitlines()
        content = body.get_content().replace("\r\n", "\n").encode("utf-8")
        assert content == b"\n".join(lines) + b"\n"
    [attachment] = list(parsed.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "PUBLISH"
    assert attachment.get_filename() == "invitation.ics"
    expected = ics.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    assert attachment.get_payload(decode=True) == expected
    # What the object says about itself is what the bytes say.
    assert built["Subject"] == subject_given
    assert [name for name, _ in built.items()] == list(parsed.keys())
    assert envelope_recipients(built) == envelope_recipients(parsed)


# ----------------------------------------------------------------------------- headers


def _stdlib_fold(name: str, value: str) -> str:
    folded: str = HeaderRegistry()(name, value).fold(policy=policy.SMTP)
    return folded


@settings(max_examples=1500, deadline=None)
@given(
    name=st.sampled_from(
        ["Subject", "X-Dk2020flow-Outbox-Id", "Content-Language", "X-" + "a" * 60]
    ),
    value=st.one_of(texts.map(one_line), header_values),
)
@example(name="Subject", value="Invitation til DK2020 – klimaplaner i hele Danmark (Køge Kommune)")
@example(name="Subject", value="ø" + " a" * 40)
@example(name="Subject", value="a" * 75 + " ø " + "b" * 75)
@example(name="Subject", value="æ" * 30 + " " + "x" * 90)
def test_unstructured_headers_fold_as_the_email_package_folds_them(name: str, value: str) -> None:
    assume(value)
    expected = _stdlib_fold(name, value)
    if expected.startswith(f"{name}:\r\n "):
        check_first_word_fold(name, expected, mime.fold(name, value))
    else:
        assert mime.fold(name, value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "CAPF-screening af Jammerbugt Kommunes klimaplan: planen skal revideres",
        "Anmodning om CAPF-godkendelse: Bornholms Regionskommunes klimahandlingsplan",
        "Frist overskredet: CAPF-screeningen af planen for Frederiksberg Kommune",
        "Invitation: Workshop 2: Handlinger og CAPF-krav, Region Hovedstaden, Hillerød",
        "Reminder: the status report of Ringkøbing-Skjern Municipality is due",
        "a" * 75 + " b",
        "a" * 100,
        "abc =?x " + "y" * 70,
    ],
)
def test_a_long_subject_is_not_folded_right_after_the_colon(value: str) -> None:
    # The email package folds these right after "Subject:"; some readers then show the
    # subject with a leading space. RFC 5322 allows the fold, the writer avoids it.
    folded = mime.fold("Subject", value)
    assert not folded.startswith("Subject:\r\n"), folded
    assert _read_header("Subject", folded).split() == value.split()
    expected = _stdlib_fold("Subject", value)
    if expected.startswith("Subject:\r\n "):
        check_first_word_fold("Subject", expected, folded)
    else:
        assert folded == expected
    for utf8 in (False, True):
        data = mime.header_bytes("Subject", value, utf8=utf8)
        assert not data.startswith(b"Subject:\r\n"), data


@settings(max_examples=300, deadline=None)
@given(date=dates)
def test_dates_fold_as_the_email_package_folds_them(date: dt.datetime) -> None:
    value = email.utils.format_datetime(date)
    assert mime.fold("Date", value) == _stdlib_fold("Date", value)


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(message_ids, st.from_regex(r"<[a-z.]{1,90}@[a-z.\-]{1,20}>", fullmatch=True))
)
def test_message_ids_fold_as_the_email_package_folds_them(value: str) -> None:
    assert mime.fold("Message-ID", value) == _stdlib_fold("Message-ID", value)


# ----------------------------------------------------------------------------- boundaries


def test_boundaries_are_deterministic_and_kept_out_of_the_content() -> None:
    mail, arguments = _dk2020_mail("Invitation til DK2020")
    first = build_message(mail, **arguments)
    again = build_message(mail, **arguments)
    assert first.as_bytes() == again.as_bytes()
    assert re.fullmatch(r"={15}\d{19}==", first.root.boundary)
    other = build_message(mail, **{**arguments, "message_id": "<dk2020flow.2.20200531@x.dk>"})
    assert other.root.boundary != first.root.boundary
    # A boundary found in the content is drawn again.
    drawn = mime.boundary(b"seed")
    redrawn = mime.boundary(b"seed", [b"text\r\n--" + drawn.encode() + b"\r\nmore"])
    assert redrawn != drawn
    assert re.fullmatch(r"={15}\d{19}==", redrawn)


def test_a_mixed_message_has_two_boundaries() -> None:
    mail, arguments = _dk2020_mail("Invitation til DK2020")
    calendar = CalendarAttachment(content="BEGIN:VCALENDAR\n", method=CalendarMethod.REQUEST)
    built = build_message(mail, calendar=calendar, **arguments)
    inner = built.root.parts[0]
    assert built.root.boundary != inner.boundary
    data = built.as_bytes()
    assert data.count(b"--" + built.root.boundary.encode()) == 3
    assert data.count(b"--" + inner.boundary.encode()) == 3


# ----------------------------------------------------------------------------- the object


def test_the_message_answers_like_an_email_message() -> None:
    mail, arguments = _dk2020_mail("Invitation til DK2020")
    built = build_message(mail, **arguments)
    assert built["Subject"] == "Invitation til DK2020"
    assert built["subject"] == "Invitation til DK2020"
    assert built["To"] == "Borgmesteren i København <borgmester@koebenhavn.example.dk>"
    assert built["Cc"] == '"Klimakoordinator, København Kommune" <klima@koebenhavn.example.dk>'
    assert built["Bcc"] is None
    assert built.get("Reply-To", "none") == "none"
    assert "Message-ID" in built and "Bcc" not in built
    assert built.sender == "dk2020flow@example.org"
    assert built.recipients == ("borgmester@koebenhavn.example.dk", "klima@koebenhavn.example.dk")
    assert envelope_recipients(built) == list(built.recipients)
    parsed = built.to_email_message()
    assert parsed["Subject"] == "Invitation til DK2020"
    assert "data=" not in repr(built)


def test_headers_the_builder_sets_cannot_be_added() -> None:
    mail, arguments = _dk2020_mail("Invitation til DK2020")
    for name in ("Bcc", "subject", "Content-Type", "Content-Transfer-Encoding", "MIME-Version"):
        with pytest.raises(MessageError, match="not one to add"):
            build_message(mail, **{**arguments, "headers": {name: "x"}})
    with pytest.raises(MessageError, match="twice"):
        build_message(mail, **{**arguments, "headers": {"X-A": "1", "x-a": "2"}})
    with pytest.raises(MessageError, match="header name"):
        build_message(mail, **{**arguments, "headers": {"X-A\n": "1"}})
    with pytest.raises(MessageError, match="not a valid Message-ID"):
        build_message(mail, **{**arguments, "message_id": "<x@y>\n"})
