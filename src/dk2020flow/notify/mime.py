"""Writing a message's MIME bytes: what ``EmailMessage.as_bytes(policy=policy.SMTP)``
would write for it, byte for byte, in a fraction of the time.

:func:`dk2020flow.notify.message.build_message` makes one of two fixed shapes::

    multipart/alternative              multipart/mixed
    ├── text/plain (quoted-printable)  ├── multipart/alternative (as on the left)
    └── text/html  (quoted-printable)  └── text/calendar (base64, an attachment)

The email package spends ~1-3 ms on such a message, most of it parsing every
header value into a syntax tree and folding it back. Here a message is a small tree
of :class:`Part` with encoded bodies, written by :func:`write`:

- Bodies are encoded as the email package encodes them (``quoprimime.body_encode``
  with 78-character lines, ``base64`` in 76-character lines) — see
  :func:`quoted_printable` and :func:`base64_body`.
- Headers take a fast path when their value is of a kind that changes from message
  to message: plain text (Subject, X-…: ASCII, or words with non-ASCII characters
  that become RFC 2047 encoded words, folded exactly as the email package folds
  them), a Date, a Message-ID, a multipart Content-Type, an address list (folded
  from the parse tree the email package would make of it, for names of Latin
  letters and printable ASCII and dot-atom addresses: encoded words, quoted names,
  lines broken between addresses as the email package does). Every other value
  (names with quotes, backslashes, ``=?``, other scripts; non-ASCII local parts;
  the constant headers of the parts; a quirk of the folding the fast path does not
  follow; anything unusual) is folded by the email package itself, once per
  distinct value.
- The MIME boundaries are not random: :func:`boundary` derives them from a hash of
  the Message-ID and the content, so one run of a simulation writes the same files
  as the next. They keep the email package's form (``=`` × 15, 19 digits, ``==``),
  so headers fold the same way.

``tests/unit/notify/test_mime.py`` holds the email package's way as an oracle and
compares the bytes for random subjects, names and bodies.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email import policy as email_policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import Policy
from itertools import accumulate
from typing import Any

CRLF = "\r\n"
MAX_LINE = 78
"""``policy.SMTP.max_line_length``: headers and quoted-printable lines fold at 78."""
_MAX_HEADER_LINE = 998
"""RFC 5322 2.1.1: a line must not be longer (78 is what it should be)."""

# ----------------------------------------------------------------------------- stdlib folding

_HEADER_CACHE_SIZE = 4096


class _Header(BaseHeader):
    """The base of every header class of ``POLICY``: it remembers how it folds.

    A header object never changes once made, and folding it (the email
    package's most expensive step) depends on nothing but the object and the
    settings of the policy the folding reads, so the result is kept by those.
    """

    def fold(self, *, policy: Policy) -> str:
        folds: dict[tuple[Any, ...], str] | None = self.__dict__.get("_folds")
        if folds is None:
            folds = self.__dict__["_folds"] = {}
        key = (type(policy), policy.linesep, policy.max_line_length, getattr(policy, "utf8", None))
        folded = folds.get(key)
        if folded is None:
            folded = folds[key] = super().fold(policy=policy)
        return folded


class _HeaderFactory(HeaderRegistry):
    """``policy.default``'s header registry, with its classes made once (the
    standard registry makes a new class on every header) and headers given as
    text made once per (name, value), least recently used dropped first: the
    Content-Type, MIME-Version, From … of one message are those of the next,
    and sharing the object shares its folding."""

    def __init__(self) -> None:
        super().__init__(base_class=_Header)
        self._classes: dict[str, type[BaseHeader]] = {}
        self._made: dict[tuple[str, str], BaseHeader] = {}

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found

    def __call__(self, name: str, value: Any) -> Any:
        if type(value) is not str:
            return self[name](name, value)
        key = (name, value)
        made = self._made
        found = made.pop(key, None)  # and back at the end: the least recently used go first
        if found is None:
            if len(made) >= _HEADER_CACHE_SIZE:
                del made[next(iter(made))]
            found = self[name](name, value)
        made[key] = found
        return found


POLICY = email_policy.default.clone(header_factory=_HeaderFactory())
"""``policy.default`` with a header factory that makes and folds each distinct header once."""

_SMTP = email_policy.SMTP
_SMTPUTF8 = email_policy.SMTPUTF8
_STRUCTURED = frozenset(HeaderRegistry().registry)
"""Names the email package parses with a grammar of their own; any other is unstructured."""


class AddressList(str):
    """The value of an address header (From, To, Cc, Reply-To): the text the email
    package shows for it (``Name <addr>, …``), and the addresses it was made from."""

    addresses: tuple[Address, ...]

    def __new__(cls, addresses: Iterable[Address]) -> AddressList:
        addresses = tuple(addresses)
        self = super().__new__(cls, ", ".join([str(address) for address in addresses]))
        self.addresses = addresses
        return self

    def header(self, name: str) -> BaseHeader:
        """The email package's header of these addresses (made once per name)."""
        made: dict[str, BaseHeader] = self.__dict__.setdefault("_headers", {})
        found = made.get(name)
        if found is None:
            found = made[name] = POLICY.header_factory(name, list(self.addresses))
        return found


def _stdlib_fold(name: str, value: str, utf8: bool) -> str:
    if isinstance(value, AddressList):
        header = value.header(name)
    elif isinstance(value, BaseHeader):
        header = value
    else:
        header = POLICY.header_factory(name, value)
    folded: str = header.fold(policy=_SMTPUTF8 if utf8 else _SMTP)
    if isinstance(header, UnstructuredHeader):
        folded = _first_word_on_first_line(header.name, folded)
    return folded


def _first_word_on_first_line(name: str, folded: str) -> str:
    """``Subject: word`` where the email package wrote ``Subject:`` and the whole value
    on the next line (it does so when the value fits on a line of its own).

    RFC 5322 allows folding white space right after the colon, but some mail
    readers then show the subject with a leading space. The first word moves up,
    the rest stays where it was: no line gets longer but the first, and that
    one by the first word only.
    """
    head = f"{name}:{CRLF} "
    if not folded.startswith(head):
        return folded
    line, ending, rest = folded[len(head) :].partition(CRLF)
    word, space, tail = line.partition(" ")
    if not word:  # pragma: no cover - the email package never starts a line with two spaces
        return folded
    if len(name) + 2 + len(word) > _MAX_HEADER_LINE:
        return folded
    if space and tail:
        return f"{name}: {word}{CRLF} {tail}{ending}{rest}"
    return f"{name}: {word}{ending}{rest}"


# ----------------------------------------------------------------------------- fast folding

_PLAIN_TEXT = re.compile(
    r"[^\s\x00-\x1f\x7f-\x9f\ud800-\udfff]+(?: [^\s\x00-\x1f\x7f-\x9f\ud800-\udfff]+)*"
)
"""Words (no control or surrogate character) separated by single spaces."""

_PRINTABLE = re.compile(r"[ -~]*")
"""Printable ASCII: nothing to encode."""
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE = re.compile(
    rf"({'|'.join(_DAYS)}), (\d\d) ({'|'.join(_MONTHS)}) ([1-9]\d\d\d) "
    r"([01]\d|2[0-3]):([0-5]\d):([0-5]\d) [+-](?:[01]\d|2[0-3])[0-5]\d"
)
"""What ``format_datetime`` writes (for a year from 1000 on, an offset in whole minutes)."""
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+"
_MESSAGE_ID = re.compile(rf"<{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*>")
_MULTIPART = re.compile(r'multipart/(alternative|mixed); boundary="={15}\d{19}=="')

_Q_SAFE = frozenset(b"-!*+/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_Q_BYTE = ["_" if b == 0x20 else chr(b) if b in _Q_SAFE else f"={b:02X}" for b in range(256)]
_EW_CHROME = len("=?utf-8?q??=")
_ENCODED_WORD = re.compile(r"=\?utf-8\?[qb]\?[^?]*\?=")


def _q_cost(char: str) -> int:
    """The length of ``char`` in RFC 2047 "Q" encoding."""
    return sum(len(_Q_BYTE[b]) for b in char.encode("utf-8"))


_Q_COST = {chr(c): _q_cost(chr(c)) for c in range(128)}


def _encoded_word(text: str) -> str:
    """``=?utf-8?q?…?=`` or ``=?utf-8?b?…?=``: the shorter, Q unless B saves 5 or more."""
    data = text.encode("utf-8")
    q = "".join([_Q_BYTE[b] for b in data])
    if len(q) - (len(data) + 2) // 3 * 4 < 5:
        return f"=?utf-8?q?{q}?="
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


class _UnfoldableError(Exception):
    """The fast folding met a shape it does not know; the email package folds it."""


def _steal_trailing_space(lines: list[str]) -> str:
    if lines[-1][-1:] == " ":
        lines[-1] = lines[-1][:-1]
        return " "
    return ""


def _fold_as_encoded_words(
    text: str,
    lines: list[str],
    last_ew: int | None,
    plain: dict[str, str],
    start: int | None = None,
) -> int:
    """``_header_value_parser._fold_as_ew`` for UTF-8 text: ``text`` (joined to the
    encoded word that ``last_ew`` points at on the last line) as encoded words that
    fit the lines. Returns where the last encoded word starts. ``plain`` maps each
    encoded word made to its text (the email package decodes it again instead)."""
    if last_ew is not None:
        tail = lines[-1][last_ew:]
        stripped = tail.lstrip(" ")
        found = _ENCODED_WORD.match(stripped)
        if found is None or found.group() not in plain:
            raise _UnfoldableError(tail)
        text = (
            tail[: len(tail) - len(stripped)]
            + plain[found.group()]
            + stripped[found.end() :]
            + text
        )
        lines[-1] = lines[-1][:last_ew]
    if text[0] == " ":
        text = text[1:]
        if len(lines[-1]) == MAX_LINE:
            lines.append(_steal_trailing_space(lines))
        lines[-1] += " "
    trailing = ""
    if text[-1] == " ":
        trailing, text = " ", text[:-1]
    new_last_ew = len(lines[-1]) if last_ew is None else last_ew
    if start is not None:  # a ``last_ew`` with nothing after it to join
        new_last_ew = start
    # Lengths of every prefix in Q (per character) and in bytes, for the shrinking below.
    q_costs = [0, *accumulate(_Q_COST.get(c) or _q_cost(c) for c in text)]
    sizes = [0, *accumulate(1 if c < "\x80" else len(c.encode("utf-8")) for c in text)]
    start, end_of_text = 0, len(text)
    while start < end_of_text:
        remaining = MAX_LINE - len(lines[-1])
        room = remaining - _EW_CHROME
        if room <= 0:
            lines.append(" ")
            continue
        end = min(start + room, end_of_text)
        while end > start:
            q = q_costs[end] - q_costs[start]
            b = (sizes[end] - sizes[start] + 2) // 3 * 4
            if (q if q - b < 5 else b) + _EW_CHROME <= remaining:
                break
            end -= 1
        word = _encoded_word(text[start:end])
        plain[word] = text[start:end]
        lines[-1] += word
        start = end
        if start < end_of_text:
            lines.append(" ")
            new_last_ew = len(lines[-1])
    lines[-1] += trailing
    return new_last_ew


@functools.lru_cache(maxsize=1024)
def _fold_words(name: str, value: str) -> str:
    """``_header_value_parser._refold_parse_tree`` for an unstructured header whose
    value is words separated by single spaces (its tokens: words and spaces)."""
    lines = [f"{name}: "]
    last_ew: int | None = None
    plain: dict[str, str] = {}
    tokens = value.replace(" ", "\0 \0").split("\0")
    position, forced = 0, False
    while position < len(tokens):
        token = tokens[position]
        position += 1
        if forced or not token.isascii():
            forced = False
            last_ew = _fold_as_encoded_words(token, lines, last_ew, plain)
            continue
        if len(token) <= MAX_LINE - len(lines[-1]):
            lines[-1] += token
            continue
        if position == 1 and len(token) + 1 <= MAX_LINE:
            # The first word stays on the first line, even past 78 characters, where
            # the email package folds right after the colon (_first_word_on_first_line).
            lines[-1] += token
            continue
        if len(token) + 1 <= MAX_LINE:
            newline = _steal_trailing_space(lines)
            if newline or token.isspace():
                lines.append(newline + token)
                last_ew = None
                continue
        # Too long for any line: an encoded word can be split, so make it one.
        forced = True
        position -= 1
    return CRLF.join(lines) + CRLF


def _fold_unstructured(name: str, value: str) -> str | None:
    if len(name) > 40 or "=?" in value or not _PLAIN_TEXT.fullmatch(value):
        return None
    if value.isascii() and len(name) + 2 + len(value) <= MAX_LINE:
        return f"{name}: {value}{CRLF}"
    # Never folded right after the colon, where the email package would put a value
    # that fits on a line of its own: the first word stays on the first line.
    try:
        return _fold_words(name, value)
    except _UnfoldableError:
        return None


def _fold_date(name: str, value: str) -> str | None:
    # The email package parses the date and writes it again: the same text, if the
    # date exists and the day of the week is right.
    found = _DATE.fullmatch(value)
    if found is None:
        return None
    weekday, day, month, year = found.group(1, 2, 3, 4)
    try:
        date = dt.date(int(year), _MONTHS.index(month) + 1, int(day))
    except ValueError:
        return None
    return f"{name}: {value}{CRLF}" if _DAYS[date.weekday()] == weekday else None


def _fold_message_id(name: str, value: str) -> str | None:
    if len(name) + 2 + len(value) > MAX_LINE or "=?" in value:
        return None
    return f"{name}: {value}{CRLF}" if _MESSAGE_ID.fullmatch(value) else None


def _fold_content_type(name: str, value: str) -> str | None:
    found = _MULTIPART.fullmatch(value)
    if found is None or name != "Content-Type":
        return None
    if found.group(1) == "mixed":  # 78 characters: it just fits
        return f"{name}: {value}{CRLF}"
    return f"{name}: {value.replace(' ', CRLF + ' ')}{CRLF}"


_FAST: dict[str, Callable[[str, str], str | None]] = {
    "subject": _fold_unstructured,
    "date": _fold_date,
    "message-id": _fold_message_id,
    "content-type": _fold_content_type,
}


class _Token:
    """A node of the email package's parse tree of an address list, with what
    ``_refold_parse_tree`` asks of it: its text, its kind, its children (none for
    a terminal), whether it may become an encoded word, whether it starts with
    folding white space."""

    __slots__ = ("ascii", "children", "ew_allowed", "folded", "fws", "kind", "text")

    ascii: bool
    children: list[_Token] | None
    ew_allowed: bool
    folded: str | None
    fws: bool
    kind: str
    text: str

    def __init__(
        self,
        kind: str,
        text: str = "",
        children: list[_Token] | None = None,
        *,
        ew_allowed: bool | None = None,
    ) -> None:
        self.kind = kind
        self.children = children
        if children is not None:
            text = text or "".join([child.text for child in children])
            if ew_allowed is None:
                ew_allowed = all(child.ew_allowed for child in children)
            self.fws = children[0].fws
        else:
            self.fws = kind == "fws"
        self.text = text
        self.ew_allowed = True if ew_allowed is None else ew_allowed
        self.ascii = text.isascii()
        self.folded = None


_SPACE = _Token("fws", " ")
_CFWS = _Token("cfws", children=[_SPACE])
_COMMA = _Token("list-separator", ",")
_AT = _Token("address-at-symbol", "@")
_DOT = _Token("dot", ".")
_ANGLE_START = _Token("angle-addr-start", "<")
_ANGLE_END = _Token("angle-addr-end", ">")
_BLOCKED_END = _Token("wrap_as_ew_blocked")
_SPECIALS = frozenset('()<>@,:;."[]\\')
_DOT_ATOM = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_DOMAIN = re.compile(r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*")
_NAME_WORD = re.compile(r"(?:[!#-'*+\-/-9=?A-Z^-~]|[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f])+")
"""A word of a display name the fast path knows: printable ASCII but the specials and
``"`` ``\\`` (which are quoted or escaped), and letters of the Latin alphabets."""
_QUOTED_WORD = re.compile(r"(?:[!#-\[\]-~]|[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f])+")


def _dot_atom(text: str, leading: bool) -> _Token:
    pieces: list[_Token] = []
    for position, atom in enumerate(text.split(".")):
        if position:
            pieces.append(_DOT)
        pieces.append(_Token("atext", atom))
    dot_atom_text = _Token("dot-atom-text", children=pieces, ew_allowed=True)
    return _Token("dot-atom", children=[_CFWS, dot_atom_text] if leading else [dot_atom_text])


def _addr_spec(username: str, domain: str, leading: bool) -> _Token:
    local_part = _Token("local-part", children=[_dot_atom(username, leading)], ew_allowed=False)
    domain_part = _Token("domain", children=[_dot_atom(domain, False)], ew_allowed=False)
    return _Token("addr-spec", children=[local_part, _AT, domain_part], ew_allowed=False)


def _display_name(name: str, leading: bool) -> _Token | None:
    words = name.split(" ")
    if _SPECIALS.isdisjoint(name):
        atoms: list[_Token] = []
        for position, word in enumerate(words):
            if not _NAME_WORD.fullmatch(word):
                return None
            pieces = [_Token("atext", word), _CFWS]
            if leading and not position:
                pieces.insert(0, _CFWS)
            atoms.append(_Token("atom", children=pieces))
        return _Token("display-name", children=atoms)
    pieces = []
    for position, word in enumerate(words):
        if not _QUOTED_WORD.fullmatch(word):
            return None
        if position:
            pieces.append(_SPACE)
        pieces.append(_Token("ptext", word))
    bare = _Token("bare-quoted-string", f'"{name}"', pieces)
    quoted = [_CFWS, bare, _CFWS] if leading else [bare, _CFWS]
    return _Token("display-name", children=[_Token("quoted-string", children=quoted)])


def _address_list(addresses: tuple[Address, ...]) -> _Token | None:
    """The email package's parse tree of ``AddressList(addresses)``, or None for
    an address the fast path does not know."""
    items: list[_Token] = []
    for position, address in enumerate(addresses):
        name, username, domain = address.display_name, address.username, address.domain
        if not _DOT_ATOM.fullmatch(username) or not _DOMAIN.fullmatch(domain):
            return None
        leading = position > 0
        if position:
            items.append(_COMMA)
        if not name:
            mailbox = _Token("mailbox", children=[_addr_spec(username, domain, leading)])
        else:
            display_name = _display_name(name, leading)
            if display_name is None:
                return None
            angle = _Token(
                "angle-addr",
                children=[_ANGLE_START, _addr_spec(username, domain, False), _ANGLE_END],
            )
            mailbox = _Token(
                "mailbox", children=[_Token("name-addr", children=[display_name, angle])]
            )
        items.append(_Token("address", children=[mailbox]))
    return _Token("address-list", children=items)


def _fold_as_ew_token(
    text: str, lines: list[str], last_ew: int | None, plain: dict[str, str]
) -> int:
    if last_ew is not None:
        tail = lines[-1][last_ew:]
        if not tail:
            # ``last_ew`` is left from a line before (the email package's quirk):
            # nothing to join, and it stays unless an encoded word wraps.
            return _fold_as_encoded_words(text, lines, None, plain, start=last_ew)
        # The email package decodes every encoded word after ``last_ew``: only one is known.
        stripped = tail.lstrip(" ")
        found = _ENCODED_WORD.match(stripped)
        if found is None or "=?" in stripped[found.end() :]:
            raise _UnfoldableError(tail)
    return _fold_as_encoded_words(text, lines, last_ew, plain)


def _refold(tree: _Token, plain: dict[str, str]) -> str:
    """``_header_value_parser._refold_parse_tree`` (``policy.SMTP``) of ``tree``."""
    if tree.folded is not None:
        return tree.folded
    lines = [""]
    last_ew: int | None = None
    blocked = 0
    want_encoding = False
    assert tree.children is not None
    parts = list(tree.children)
    parts.reverse()  # popped from the end
    while parts:
        part = parts.pop()
        if part is _BLOCKED_END:
            blocked -= 1
            continue
        text = part.text
        if part.kind == "ptext" and not _SPECIALS.isdisjoint(text):
            want_encoding = True
        if not part.ascii:
            want_encoding = True
        if want_encoding and not blocked:
            if not part.ew_allowed:
                want_encoding = False
                last_ew = None
                encoded = _refold(part, plain)[: -len(CRLF)]
                if CRLF not in encoded:
                    if len(encoded) > MAX_LINE - len(lines[-1]):
                        lines.append(_steal_trailing_space(lines))
                    lines[-1] += encoded
                    continue
            if part.children is not None:
                parts.extend(reversed(part.children))
            else:
                last_ew = _fold_as_ew_token(text, lines, last_ew, plain)
            want_encoding = False
            continue
        if len(text) <= MAX_LINE - len(lines[-1]):
            lines[-1] += text
            continue
        if len(text) + 1 <= MAX_LINE:
            newline = _steal_trailing_space(lines)
            if newline or part.fws:
                lines.append(newline + text)
                last_ew = None
                continue
        if part.children is not None:
            if not part.ew_allowed:
                blocked += 1
                parts.append(_BLOCKED_END)
            parts.extend(reversed(part.children))
            continue
        if part.ew_allowed and not blocked:
            parts.append(part)
            want_encoding = True
            continue
        newline = _steal_trailing_space(lines)
        if newline or part.fws:
            lines.append(newline + text)
        else:
            lines[-1] += text
    tree.folded = folded = CRLF.join(lines) + CRLF
    return folded


@functools.lru_cache(maxsize=1024)
def _fold_address_tree(name: str, value: AddressList) -> str | None:
    tree = _address_list(value.addresses)
    if tree is None:
        return None
    label = _Token(
        "header-label",
        children=[_Token("header-name", name), _Token("header-sep", ":")],
        ew_allowed=False,
    )
    header = _Token("header", children=[label, _CFWS, tree])
    try:
        return _refold(header, {})
    except _UnfoldableError:
        return None


def _fold_addresses(name: str, value: AddressList) -> str | None:
    # Written as shown when it needs no encoding and fits on a line: the first or,
    # as a whole, the next. Otherwise folded as the email package folds it, from
    # its parse tree made here (for the shapes of address this knows).
    if len(name) > 40 or "=?" in value:
        return None
    if _PRINTABLE.fullmatch(value):
        if len(name) + 2 + len(value) <= MAX_LINE:
            return f"{name}: {value}{CRLF}"
        if len(value) + 1 <= MAX_LINE:
            return f"{name}:{CRLF} {value}{CRLF}"
    return _fold_address_tree(name, value)


def _fast_fold(name: str, value: str) -> str | None:
    if isinstance(value, AddressList):
        return _fold_addresses(name, value)
    key = name.lower()
    fast = _FAST.get(key)
    if fast is None:
        if key in _STRUCTURED:
            return None
        fast = _fold_unstructured
    return fast(name, value)


def fold(name: str, value: str, *, utf8: bool = False) -> str:
    """The header line(s) ``name: value`` as the email package folds them for SMTP
    (``policy.SMTP``, or ``policy.SMTPUTF8`` with ``utf8``), CRLF-terminated.

    ``value`` is text, an :class:`AddressList`, or a header object of :data:`POLICY`.
    """
    if not utf8 and not isinstance(value, BaseHeader):
        folded = _fast_fold(name, value)
        if folded is not None:
            return folded
    return _stdlib_fold(name, value, utf8)


_FOLDED: dict[tuple[str, str, bool], bytes] = {}
"""What the email package folded, by (name, text, utf8): the constant headers of every part."""


def header_bytes(name: str, value: str, *, utf8: bool = False) -> bytes:
    """:func:`fold`, as the generator writes it (``policy.fold_binary``)."""
    charset = "utf-8" if utf8 else "ascii"
    if isinstance(value, BaseHeader):
        return _stdlib_fold(name, value, utf8).encode(charset, "surrogateescape")
    if not utf8:
        folded = _fast_fold(name, value)
        if folded is not None:
            return folded.encode("ascii")
    key = (name, value, utf8)
    found = _FOLDED.get(key)
    if found is None:
        if len(_FOLDED) >= _HEADER_CACHE_SIZE:
            _FOLDED.clear()
        found = _FOLDED[key] = _stdlib_fold(name, value, utf8).encode(charset, "surrogateescape")
    return found


# ----------------------------------------------------------------------------- bodies

# Bytes quoted-printable leaves alone (printable ASCII but "=", space, tab, line ends).
_QP_SAFE = bytes(b for b in range(256) if 32 <= b < 127 and b != 0x3D) + b" \t\r\n"
_QP_HEX = [f"={b:02X}".encode("ascii") for b in range(256)]
_WHITE = (b" ", b"\t")


def _qp_line(line: bytes) -> bytes:
    """One line of ``quoprimime.body_encode(…, maxlinelen=78)``, soft breaks as CRLF."""
    pieces: list[bytes] = []
    start = 0
    last_start = len(line) - 1 - MAX_LINE
    while start <= last_start:
        stop = start + MAX_LINE - 1
        # Never split an escape ("=XX"); its "=" then doubles as the soft break.
        if line[stop - 2] == 0x3D:
            pieces.append(line[start : stop - 1])
            start = stop - 2
        elif line[stop - 1] == 0x3D:
            pieces.append(line[start:stop])
            start = stop - 1
        else:
            pieces.append(line[start:stop] + b"=")
            start = stop
    if line and line[-1] in b" \t":
        room = start - last_start
        if room >= 3:
            end = _QP_HEX[line[-1]]
        elif room == 2:
            end = line[-1:] + b"=\r\n"
        else:
            end = b"=\r\n" + _QP_HEX[line[-1]]
        pieces.append(line[start:-1] + end)
    else:
        pieces.append(line[start:])
    return b"\r\n".join(pieces)


def quoted_printable(text: str) -> bytes:
    """``text`` in UTF-8 as the email package writes a quoted-printable body
    (``set_content(text, cte="quoted-printable")``): line ends made CRLF, a final
    one added, lines folded at 78 characters."""
    data = b"\n".join(text.encode("utf-8").splitlines()) + b"\n"
    unsafe = data.translate(None, _QP_SAFE)
    if unsafe:
        if b"=" in unsafe:
            data = data.replace(b"=", b"=3D")  # first: the others bring in "="
        for byte in set(unsafe):
            if byte != 0x3D:
                data = data.replace(bytes((byte,)), _QP_HEX[byte])
    lines = data.split(b"\n")
    lines.pop()  # data ends with a line end
    # Only a line too long or ending in white space changes.
    return (
        b"\r\n".join(
            [
                line if len(line) <= MAX_LINE and not line.endswith(_WHITE) else _qp_line(line)
                for line in lines
            ]
        )
        + b"\r\n"
    )


def base64_body(data: bytes) -> bytes:
    """``data`` as the email package writes a base64 body: 76-character lines, CRLF."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


# ----------------------------------------------------------------------------- boundaries


def boundary(seed: bytes, avoid: Iterable[bytes] = ()) -> str:
    """A boundary of the email package's form, from a hash of ``seed`` (the Message-ID
    and the content), drawn again while ``--boundary`` occurs in any of ``avoid``."""
    avoid = tuple(avoid)
    counter = 0
    while True:
        digest = hashlib.blake2b(seed + counter.to_bytes(4, "big"), digest_size=8).digest()
        found = f"{'=' * 15}{int.from_bytes(digest, 'big') % 10**19:019d}=="
        marker = b"--" + found.encode("ascii")
        if not any(marker in text for text in avoid):
            return found
        counter += 1


# ----------------------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class Part:
    """A MIME part: its headers in order, and an encoded body (CRLF line ends) or parts.

    A multipart's Content-Type header must carry ``boundary`` (see :func:`multipart`).
    """

    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    parts: tuple[Part, ...] = ()
    boundary: str = ""


def multipart(
    subtype: str,
    parts: Iterable[Part],
    *,
    seed: bytes,
    before: Iterable[tuple[str, str]] = (),
    after: Iterable[tuple[str, str]] = (),
) -> Part:
    """A ``multipart/<subtype>`` part; its boundary occurs in none of ``parts``."""
    parts = tuple(parts)
    chosen = boundary(seed + subtype.encode("ascii"), _contents(parts))
    content_type = ("Content-Type", f'multipart/{subtype}; boundary="{chosen}"')
    return Part(headers=(*before, content_type, *after), parts=parts, boundary=chosen)


@functools.lru_cache(maxsize=64)
def _attachment_headers(
    maintype: str, subtype: str, filename: str, params: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    # The email package's own headers for an attachment (the order it leaves them
    # in, its quoting of the parameters), made once per kind of attachment.
    part = EmailMessage(policy=POLICY)
    part.set_content(
        b"",
        maintype=maintype,
        subtype=subtype,
        cte="base64",
        filename=filename,
        params=dict(params),
    )
    return tuple(part.raw_items())


def calendar_part(data: bytes, method: str, filename: str) -> Part:
    """A ``text/calendar; method=…`` attachment of ``data`` (an ``.ics`` with CRLF line ends)."""
    headers = _attachment_headers(
        "text", "calendar", filename, (("method", method), ("charset", "utf-8"))
    )
    return Part(headers=headers, body=base64_body(data))


def _contents(parts: Iterable[Part]) -> Iterable[bytes]:
    for part in parts:
        yield part.body
        if part.parts:
            yield part.boundary.encode("ascii")
            yield from _contents(part.parts)


def write(part: Part, *, utf8: bool = False) -> bytes:
    """The part as ``as_bytes(policy=policy.SMTP)`` writes it (``policy.SMTPUTF8``
    with ``utf8``: non-ASCII headers in UTF-8, for a server that takes SMTPUTF8)."""
    out: list[bytes] = []
    _write(part, utf8, out)
    return b"".join(out)


_LEAF_HEADS: dict[tuple[tuple[tuple[str, str], ...], bool], bytes] = {}
"""The header blocks of leaf parts (the same few for every message)."""


def _head(headers: tuple[tuple[str, str], ...], utf8: bool) -> bytes:
    return b"".join([header_bytes(name, value, utf8=utf8) for name, value in headers])


def _write(part: Part, utf8: bool, out: list[bytes]) -> None:
    if not part.parts:
        key = (part.headers, utf8)
        head = _LEAF_HEADS.get(key)
        if head is None:
            if len(_LEAF_HEADS) >= _HEADER_CACHE_SIZE:
                _LEAF_HEADS.clear()
            head = _LEAF_HEADS[key] = _head(part.headers, utf8)
        out += (head, b"\r\n", part.body)
        return
    out += (_head(part.headers, utf8), b"\r\n")
    marker = b"--" + part.boundary.encode("ascii")
    out.append(marker + b"\r\n")
    for position, child in enumerate(part.parts):
        if position:
            out.append(b"\r\n" + marker + b"\r\n")
        _write(child, utf8, out)
    out.append(b"\r\n" + marker + b"--\r\n")
