"""How a message's headers are folded and its MIME boundaries chosen: the standard
library's ``email`` package, with two settings of our own.

:func:`dk2020flow.notify.message.build_message` builds an ``EmailMessage`` and writes
it with the policies here (``as_bytes(policy=SMTP)``). Two things differ from the
email package's ``policy.SMTP`` / ``policy.SMTPUTF8``:

- A long unstructured header (Subject, X-…) is never folded right after its colon:
  the email package folds ``Subject:`` onto a line of its own when the value then
  fits on the next line, and some mail readers show such a subject with a leading
  space. :class:`FirstWordPolicy` overrides the policy's public ``fold`` /
  ``fold_binary`` (the hooks the generator calls for every header) and moves the
  first word up onto the first line; no line gets longer but the first, and that
  one by the first word only (RFC 5322 allows 998 characters).
- The MIME boundaries are not random: :func:`boundary` derives them from a hash of
  the Message-ID and the content (given with the public ``set_boundary``), so one
  run of a simulation writes the same files as the next. They keep the email
  package's form (``=`` x 15, 19 digits, ``==``).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import EmailPolicy, Policy
from typing import Any

_MAX_HEADER_LINE = 998
"""RFC 5322 2.1.1: a line must not be longer (78 is what it should be)."""

_REGISTRY = HeaderRegistry()


@functools.lru_cache(maxsize=256)
def _unstructured(name: str) -> bool:
    """Whether the email package treats ``name`` as free text (Subject, X-…)."""
    return issubclass(_REGISTRY[name], UnstructuredHeader)


def first_word_on_first_line(name: str, folded: str, linesep: str = "\r\n") -> str:
    """``Subject: word`` where the email package wrote ``Subject:`` and the whole value
    on the next line (it does so when the value fits on a line of its own).

    The first word moves up, the rest stays where it was: no line gets longer but
    the first, and that one by the first word only.
    """
    head = f"{name}:{linesep} "
    if not folded.startswith(head):
        return folded
    line, ending, rest = folded[len(head) :].partition(linesep)
    word, space, tail = line.partition(" ")
    if not word:  # pragma: no cover - the email package never starts a line with two spaces
        return folded
    if len(name) + 2 + len(word) > _MAX_HEADER_LINE:
        return folded
    if space and tail:
        return f"{name}: {word}{linesep} {tail}{ending}{rest}"
    return f"{name}: {word}{ending}{rest}"


_CACHE_SIZE = 4096


class _Header(BaseHeader):
    """The base of every header class of :data:`DEFAULT` (``HeaderRegistry``'s
    ``base_class``): it remembers how it folds.

    A header object never changes once made, and folding it (the email package's
    most expensive step) depends on nothing but the object and the policy's
    settings, so the result is kept by those.
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


def _key(value: Any) -> Any:
    """What a header's value is made of, hashable; None for a value not kept."""
    if type(value) is str:
        return value
    if isinstance(value, list | tuple) and all(type(a) is Address for a in value):
        return tuple((a.display_name, a.username, a.domain) for a in value)
    return None


class _HeaderFactory(HeaderRegistry):
    """``policy.default``'s header registry (the documented ``header_factory``
    hook), with its classes made once (the standard registry makes a new class on
    every header) and each header made once per (name, value), least recently
    used dropped first: the Content-Type, MIME-Version, From … of one message are
    those of the next, and sharing the object shares its folding."""

    def __init__(self) -> None:
        super().__init__(base_class=_Header)
        self._classes: dict[str, Any] = {}
        self._made: dict[tuple[str, Any], Any] = {}
        self._lock = threading.Lock()  # one factory serves every thread

    def __getitem__(self, name: str) -> Any:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found

    def __call__(self, name: str, value: Any) -> Any:
        value_key = _key(value)
        if value_key is None:
            return self[name](name, value)
        key = (name, value_key)
        made = self._made
        with self._lock:
            found = made.pop(key, None)  # and back at the end: the least recently used go first
        if found is None:
            found = self[name](name, value)
        with self._lock:
            if len(made) >= _CACHE_SIZE:
                del made[next(iter(made))]
            made[key] = found
        return found


class FirstWordPolicy(EmailPolicy):
    """``EmailPolicy`` that keeps the first word of an unstructured header on the
    header's first line (see the module's docstring)."""

    def fold(self, name: str, value: Any) -> str:
        folded: str = super().fold(name, value)
        if not _unstructured(name):
            return folded
        return first_word_on_first_line(name, folded, self.linesep)

    def fold_binary(self, name: str, value: Any) -> bytes:
        folded: bytes = super().fold_binary(name, value)
        if not _unstructured(name) or not folded.startswith(f"{name}:{self.linesep} ".encode()):
            return folded
        # ASCII or UTF-8 (utf8=True) bytes; surrogateescape keeps any other byte as it was.
        charset = "utf-8" if self.utf8 else "ascii"
        text = folded.decode(charset, "surrogateescape")
        return first_word_on_first_line(name, text, self.linesep).encode(charset, "surrogateescape")


DEFAULT = FirstWordPolicy(header_factory=_HeaderFactory())
"""``policy.default`` with the first word kept on the first line: what messages are built with."""
SMTP = DEFAULT.clone(linesep="\r\n")
"""``policy.SMTP``, the same way: what messages are written with."""
SMTPUTF8 = SMTP.clone(utf8=True)
"""``policy.SMTPUTF8``, the same way: for a server that takes SMTPUTF8."""


def fold(name: str, value: str, *, utf8: bool = False) -> str:
    """The header line(s) ``name: value`` as a message written with :data:`SMTP`
    (:data:`SMTPUTF8` with ``utf8``) carries them, CRLF-terminated."""
    policy = SMTPUTF8 if utf8 else SMTP
    return policy.fold(name, policy.header_factory(name, value))


def header_bytes(name: str, value: str, *, utf8: bool = False) -> bytes:
    """:func:`fold`, as the generator writes it (the policy's ``fold_binary``)."""
    policy = SMTPUTF8 if utf8 else SMTP
    return policy.fold_binary(name, policy.header_factory(name, value))


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


def set_boundaries(message: EmailMessage, seed: bytes) -> None:
    """Give every multipart of ``message`` a boundary from ``seed`` and its subtype,
    one that occurs in none of the encoded bodies below it."""
    for part in message.walk():
        if isinstance(part, EmailMessage) and part.is_multipart():
            bodies = [_encoded(leaf) for leaf in part.walk() if not leaf.is_multipart()]
            part.set_boundary(boundary(seed + part.get_content_subtype().encode("ascii"), bodies))


def _encoded(part: Any) -> bytes:
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


# ----------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Part:
    """What a built message's MIME tree looks like: a part's content type, its
    boundary (a multipart's; empty for a leaf) and its parts."""

    content_type: str
    boundary: str = ""
    parts: tuple[Part, ...] = ()


def tree(message: EmailMessage) -> Part:
    """The MIME tree of ``message`` (read with the email package's public API)."""
    if not message.is_multipart():
        return Part(content_type=message.get_content_type())
    return Part(
        content_type=message.get_content_type(),
        boundary=message.get_boundary() or "",
        parts=tuple(tree(part) for part in message.iter_parts() if isinstance(part, EmailMessage)),
    )
