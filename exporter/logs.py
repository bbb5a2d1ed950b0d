"""Logging to stderr, human-readable or JSON lines, with secrets redacted.

Text:  2026-11-23T11:00:00.123Z INFO exporter.scheduler [source=prod-feed] message
JSON:  {"ts": "2026-11-23T11:00:00.123Z", "level": "INFO", "logger": "exporter.scheduler",
        "message": "message", "source": "prod-feed"}

Context goes in `extra=` (`logger.info("poll failed", extra={"source": name})`);
both formats write every extra field. Redaction happens in a filter on the
handler, before any formatter runs, so no secret is written whatever a caller
passes: message, %-args, extras, exception text and stack.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

from exporter.redact import Redactor

__all__ = ["JsonFormatter", "LogFormat", "RedactingFilter", "TextFormatter", "setup_logging"]

LogFormat = Literal["text", "json"]

# Everything a LogRecord carries by itself; any other attribute came from
# `extra=`. Computed from a real record so new Python versions stay right.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Libraries that log every request or job run at INFO: at INFO our own lines
# would drown. Their warnings still come through.
_CHATTY_LOGGERS: Final = ("httpx", "httpcore", "apscheduler", "urllib3")


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value for key, value in record.__dict__.items() if key not in _RECORD_ATTRS and not key.startswith("_")
    }


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class RedactingFilter(logging.Filter):
    """Rewrites each record with every known secret replaced by "***".

    The message is formatted here (msg % args) and the args dropped, so a
    secret passed as an argument never reaches a formatter. The record is
    changed in place (Python 3.11 filters cannot return a copy), which also
    protects any handler that sees the record after ours.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self._redactor.redact
        try:
            message = record.getMessage()
        except Exception:  # a caller's bad args must not make logging print them raw
            message = f"{record.msg!s} (log arguments did not match the format: {record.args!r})"
        record.msg = redact(message)
        record.args = None
        for key, value in _extras(record).items():
            setattr(record, key, self._redactor.redact_data(value))
        if record.exc_info and not record.exc_text:
            # Cache the traceback text now, redacted; formatters reuse
            # exc_text instead of formatting exc_info again.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _text_value(value: object) -> str:
    text = (
        value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    )
    # Quote only when needed, so `source=prod-feed` stays easy to grep.
    if not text or any(c.isspace() or c in "[]" for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """`<ts> <LEVEL> <logger> [k=v ...] <message>`, then any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        context = " [" + " ".join(f"{k}={_text_value(v)}" for k, v in extras.items()) + "]" if extras else ""
        line = f"{_timestamp(record.created)} {record.levelname} {record.name}{context} {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, every extra
    field, and `exception` / `stack` when present."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            # An extra named like a core field must not overwrite it.
            out[f"extra.{key}" if key in out else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class _ExporterHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler we installed, so a second setup replaces it and
    leaves other handlers (pytest's, an embedding application's) alone."""


def setup_logging(
    level: str,
    fmt: LogFormat,
    redactor: Redactor,
    *,
    stream: TextIO | None = None,
) -> None:
    """Configure the root logger: one handler to stderr (or `stream`), in
    `fmt`, at `level` (debug | info | warning | error | critical), with every
    secret known to `redactor` removed. Calling it again replaces the
    previous setup (e.g. once the config, and so the secrets, are known)."""
    numeric = logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r} (use debug, info, warning, error or critical)")
    if fmt == "text":
        formatter: logging.Formatter = TextFormatter()
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"unknown log format {fmt!r} (use text or json)")

    handler = _ExporterHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter(redactor))

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _ExporterHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if numeric > logging.DEBUG else logging.NOTSET)
    # APScheduler warns on every tick skipped because the previous poll of the
    # source still runs; the scheduler reports that itself (status page, log).
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR if numeric > logging.DEBUG else logging.NOTSET)
