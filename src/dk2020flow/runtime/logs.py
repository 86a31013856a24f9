"""Structured logs for the daemon: one line per action, with a stable ``action`` key.

Every line the runtime writes carries an ``action`` (``tick``, ``fired``,
``delivered``, ``retry``, ``dead``, ``skipped``, ``heartbeat``, ``stopped`` …)
and a few ``key=value`` fields, so logs can be searched and counted.
``text`` format is for people (``2020-08-19T10:00:00Z INFO tick fired=3``);
``json`` gives one JSON object per line for machines.

Secrets never reach a log line: URLs are logged through ``safe_url`` and every
formatted line is passed through a redaction of the secrets the daemon knows
(the SMTP and database passwords) as a second line of defence.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, TextIO

LOGGER_NAME = "dk2020flow"
REDACTED = "***"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def log_action(
    logger: logging.Logger,
    action: str,
    message: str = "",
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one action with its fields (``extra`` carries them to the formatters)."""
    logger.log(level, message or action, extra={"action": action, "fields": fields})


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    @staticmethod
    def _time(record: logging.LogRecord) -> str:
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    @staticmethod
    def _action(record: logging.LogRecord) -> str:
        return str(getattr(record, "action", "") or "log")

    @staticmethod
    def _fields(record: logging.LogRecord) -> dict[str, Any]:
        fields = getattr(record, "fields", None)
        return {k: _plain(v) for k, v in fields.items()} if isinstance(fields, Mapping) else {}


class TextFormatter(_Redacting):
    """``TIME LEVEL ACTION key=value … message``."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [self._time(record), record.levelname, self._action(record)]
        for key, value in self._fields(record).items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if isinstance(shown, str) and (" " in shown or "=" in shown or not shown):
                shown = json.dumps(shown, ensure_ascii=False)
            parts.append(f"{key}={shown}")
        message = record.getMessage()
        if message and message != self._action(record):
            parts.append(f"- {message}")
        if record.exc_info:
            parts.append(f"({self.formatException(record.exc_info).splitlines()[-1]})")
        return self.redact(" ".join(parts))


class JsonFormatter(_Redacting):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``action``, ``message`` + fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "action": self._action(record),
        }
        for key, value in self._fields(record).items():
            data.setdefault(key, value)
        message = record.getMessage()
        if message and message != data["action"]:
            data["message"] = message
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return self.redact(json.dumps(data, ensure_ascii=False))


def configure_logging(
    fmt: LogFormat | str = LogFormat.TEXT,
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    level: int = logging.INFO,
) -> logging.Handler:
    """Send the ``dk2020flow`` loggers to ``stream`` (stderr) in ``fmt``; returns the handler."""
    formatter: logging.Formatter = (
        JsonFormatter(secrets) if LogFormat(fmt) is LogFormat.JSON else TextFormatter(secrets)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger(LOGGER_NAME)
    for old in list(root.handlers):
        if getattr(old, "_dk2020flow", False):
            root.removeHandler(old)
    handler._dk2020flow = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # APScheduler's own chatter ("Added job …", "Running job …") stays out of the
    # action log; its warnings and errors still reach stderr.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return handler
