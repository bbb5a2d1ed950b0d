"""exporter.logs and exporter.redact: both formats, and no secret ever written."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from exporter.logs import setup_logging
from exporter.redact import REDACTED, Redactor, is_sensitive_header, redact_headers, secret_variants

SECRET = "sk-live-0123456789abcdef"
OTHER_SECRET = "Bearer tok-ABCDEF987654"
TS_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """setup_logging changes the root logger; put it back for other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "apscheduler", "urllib3")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, chatty_level in chatty.items():
        logging.getLogger(name).setLevel(chatty_level)


def configure(fmt: str, level: str = "debug") -> io.StringIO:
    # pytest attaches its capture handlers to the root logger when the test
    # body starts; they would see records before our handler's filter does
    # (and choke on the deliberately bad format args). In the daemon ours is
    # the only handler. pytest removes its own handlers again afterwards.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    stream = io.StringIO()
    redactor = Redactor([SECRET, *secret_variants(OTHER_SECRET)])
    setup_logging(level, fmt, redactor, stream=stream)  # type: ignore[arg-type]
    return stream


# --------------------------------------------------------------------------
# Formats


def test_text_format() -> None:
    stream = configure("text")
    logging.getLogger("exporter.scheduler").info("poll done in %.1fs", 1.25, extra={"source": "prod-feed"})
    logging.getLogger("exporter.state").warning("no context")
    first, second = stream.getvalue().splitlines()
    assert re.fullmatch(rf"{TS_RE} INFO exporter\.scheduler \[source=prod-feed\] poll done in 1\.2s", first)
    assert re.fullmatch(rf"{TS_RE} WARNING exporter\.state no context", second)


def test_text_format_quotes_values_with_spaces_and_shows_tracebacks() -> None:
    stream = configure("text")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed", extra={"source": "a", "detail": "two words", "n": 3})
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith('x [source=a detail="two words" n=3] failed')
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"


def test_json_format() -> None:
    stream = configure("json")
    logging.getLogger("exporter.sources.runtools").warning(
        "record rejected: %s",
        "missing id",
        extra={"source": "prod-feed", "record_id": "evt_1", "count": 2, "tags": ["a"]},
    )
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert re.fullmatch(TS_RE, record.pop("ts"))
    assert record == {
        "level": "WARNING",
        "logger": "exporter.sources.runtools",
        "message": "record rejected: missing id",
        "source": "prod-feed",
        "record_id": "evt_1",
        "count": 2,
        "tags": ["a"],
    }


def test_json_format_exception_and_reserved_names() -> None:
    stream = configure("json")
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("x").error("bad", exc_info=True, extra={"level": "not the level"})
    record = json.loads(stream.getvalue())
    assert record["level"] == "ERROR"
    assert record["extra.level"] == "not the level"
    assert record["exception"].startswith("Traceback") and record["exception"].endswith("KeyError: 'k'")


def test_one_object_per_line_even_for_multiline_messages() -> None:
    stream = configure("json")
    logging.getLogger("x").info("line one\nline two")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "line one\nline two"


def test_level_filters_and_chatty_libraries_are_quieted() -> None:
    stream = configure("text", level="INFO")
    logging.getLogger("exporter.x").debug("hidden")
    logging.getLogger("httpx").info("HTTP Request: GET https://x")
    logging.getLogger("httpx").warning("shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("httpx shown")


def test_setup_twice_replaces_the_handler() -> None:
    first = configure("text")
    second = configure("json")
    logging.getLogger("x").info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_other_handlers_are_left_alone() -> None:
    configure("text")
    foreign = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(foreign)
    try:
        setup_logging("info", "json", Redactor(), stream=io.StringIO())
        assert foreign in logging.getLogger().handlers
        assert len(logging.getLogger().handlers) == 2
    finally:
        logging.getLogger().removeHandler(foreign)


@pytest.mark.parametrize(("level", "fmt"), [("loud", "text"), ("info", "xml")])
def test_bad_arguments(level: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        setup_logging(level, fmt, Redactor(), stream=io.StringIO())  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# No secret reaches the output


class Leaky:
    def __str__(self) -> str:
        return f"object holding {SECRET}"


def log_secrets_everywhere() -> None:
    log = logging.getLogger("exporter.sources.http")
    log.info(f"in the message {SECRET}")
    log.info("in an argument %s", SECRET)
    log.info("in a mapping argument %(key)s", {"key": OTHER_SECRET})
    log.info(
        "in extras", extra={"source": "a", "token": SECRET, "headers": {"Authorization": OTHER_SECRET}, "obj": Leaky()}
    )
    log.info("in an object argument %s", Leaky())
    log.info("args that do not match the format %d", SECRET)
    try:
        try:
            raise ConnectionError(f"cause with {SECRET}")
        except ConnectionError as cause:
            raise RuntimeError(f"request failed, key={SECRET}, auth={OTHER_SECRET}") from cause
    except RuntimeError:
        log.exception("in an exception")
    log.info("in the stack", stack_info=True, extra={"note": f"x{SECRET}x"})
    log.info(Leaky())


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_is_ever_written(fmt: str) -> None:
    stream = configure(fmt)
    log_secrets_everywhere()
    output = stream.getvalue()
    assert SECRET not in output
    assert "tok-ABCDEF987654" not in output
    assert "0123456789abcdef" not in output
    # Redacted, not dropped: the lines are still there, with the marker.
    assert output.count(REDACTED) >= 10
    assert "in an argument ***" in output
    assert "in the message ***" in output
    if fmt == "json":
        records = [json.loads(line) for line in output.splitlines()]
        extras = next(r for r in records if r["message"] == "in extras")
        assert extras["token"] == REDACTED
        assert extras["headers"] == {"Authorization": REDACTED}
        assert extras["obj"] == f"object holding {REDACTED}"
        failed = next(r for r in records if r["message"] == "in an exception")
        assert "RuntimeError: request failed, key=***, auth=***" in failed["exception"]
        assert "ConnectionError: cause with ***" in failed["exception"]


def test_records_seen_by_other_handlers_are_redacted_too() -> None:
    """The filter rewrites the record itself, so a handler after ours (here a
    capture handler) never sees the raw secret either."""
    configure("text")
    seen: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    capture = Capture()
    logging.getLogger().addHandler(capture)
    try:
        logging.getLogger("x").warning("key %s", SECRET)
    finally:
        logging.getLogger().removeHandler(capture)
    assert seen == ["key ***"]


# --------------------------------------------------------------------------
# Redactor


def test_redactor_longest_secret_first() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact("x abcdefgh y abcd") == "x *** y ***"


def test_redactor_ignores_short_secrets_and_empty_input() -> None:
    redactor = Redactor(["abc", ""])
    assert not redactor
    assert redactor.redact("abc abc") == "abc abc"
    assert Redactor().redact("") == ""


def test_redactor_hides_url_encoded_form() -> None:
    redactor = Redactor(["p@ss w/rd"])
    assert redactor.redact("GET /x?key=p%40ss%20w%2Frd") == "GET /x?key=***"


def test_redactor_treats_secrets_literally() -> None:
    redactor = Redactor(["a.b*c+d"])
    assert redactor.redact("a.b*c+d aXbbbc+d") == "*** aXbbbc+d"


def test_redact_data() -> None:
    redactor = Redactor([SECRET])
    data = {"k": [SECRET, 1, None, True, 2.5, (f"x{SECRET}",)], SECRET: {"n": Leaky()}}
    assert redactor.redact_data(data) == {
        "k": ["***", 1, None, True, 2.5, ["x***"]],
        "***": {"n": "object holding ***"},
    }
    assert SECRET not in repr(redactor)


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("Authorization", True),
        ("x-api-key", True),
        ("API-Key", True),
        ("token", True),
        ("Cookie", True),
        ("Proxy-Authorization", True),
        ("X-Auth-Token", True),
        ("Accept", False),
        ("X-Tenant", False),
        ("User-Agent", False),
    ],
)
def test_is_sensitive_header(name: str, sensitive: bool) -> None:
    assert is_sensitive_header(name) is sensitive


def test_redact_headers_and_secret_variants() -> None:
    assert redact_headers({"Authorization": "Bearer x", "Accept": "json"}) == {"Authorization": "***", "Accept": "json"}
    assert secret_variants("Bearer abc123") == ("Bearer abc123", "abc123")
    assert secret_variants("rawtoken") == ("rawtoken",)
