"""The one redaction helper: logs, `check-config` and the status page all use it.

Secrets are known up front (every source's key or token, every sensitive
header value from the config and the OTEL_* variables), so redaction is a
plain search-and-replace of those exact strings. That catches a secret
wherever a caller puts it (message, argument, extra field, exception text)
without guessing from the shape of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "Redactor",
    "is_sensitive_header",
    "redact_headers",
    "secret_variants",
    "url_password",
    "url_without_password",
]

REDACTED = "***"

# Shorter strings would be replaced inside ordinary words and numbers, making
# logs unreadable while protecting nothing worth protecting.
MIN_SECRET_LENGTH = 4

# Substrings rather than exact names: vendors invent headers such as
# "X-Goog-Api-Key", "Proxy-Authorization" or "X-Auth-Token". Redacting a
# harmless header by mistake costs nothing; leaking a key costs a rotation.
_SENSITIVE_HEADER_PARTS = (
    "auth",
    "key",
    "token",
    "cookie",
    "secret",
    "password",
    "passwd",
    "session",
    "signature",
    "credential",
)


def is_sensitive_header(name: str) -> bool:
    """True when a header's value should never be shown (case-insensitive)."""
    lowered = name.strip().lower()
    return any(part in lowered for part in _SENSITIVE_HEADER_PARTS)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A copy of `headers` with the value of every sensitive header replaced."""
    return {name: REDACTED if is_sensitive_header(name) else value for name, value in headers.items()}


def secret_variants(value: str) -> tuple[str, ...]:
    """The strings to hide for one secret header value.

    "Bearer abc123" may also show up without its scheme (a client that logs
    only the credential), so the part after the scheme is a secret too.
    """
    variants = [value]
    scheme, sep, credential = value.strip().partition(" ")
    if sep and scheme and credential.strip():
        variants.append(credential.strip())
    return tuple(variants)


def _split_password(url: str) -> tuple[str, str] | None:
    """(the netloc's `user:password@` prefix up to the password, the password
    as written), when the URL has one."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    userinfo, at, _ = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return None
    return user, password


def url_password(url: str) -> tuple[str, ...]:
    """The password of a `scheme://user:password@host/...` URL (a database
    DSN), as written and percent-decoded: the strings to hide."""
    found = _split_password(url)
    if found is None:
        return ()
    written = found[1]
    return tuple(dict.fromkeys((written, unquote(written))))


def url_without_password(url: str) -> str:
    """The URL with its password shown as "***" (user, host and database kept)."""
    found = _split_password(url)
    if found is None:
        return url
    user, password = found
    return url.replace(f"{user}:{password}@", f"{user}:{REDACTED}@", 1)


class Redactor:
    """Replaces every occurrence of a known secret with "***".

    Immutable once built: share one instance between threads freely.
    """

    __slots__ = ("_pattern", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        kept: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            kept.add(secret)
            # A secret that went into a URL query or form body appears
            # percent-encoded; hide that spelling as well.
            encoded = quote(secret, safe="")
            if encoded != secret:
                kept.add(encoded)
        self._secrets: frozenset[str] = frozenset(kept)
        # Longest first, so a secret that contains another is replaced whole
        # rather than leaving its tail visible.
        ordered = sorted(kept, key=lambda s: (-len(s), s))
        self._pattern: re.Pattern[str] | None = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    @property
    def secrets(self) -> frozenset[str]:
        return self._secrets

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:  # never the secrets themselves
        return f"Redactor({len(self._secrets)} secrets)"

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    def redact_data(self, value: object) -> object:
        """Redact a JSON-like value: strings anywhere inside mappings and
        sequences (keys included); numbers, bools and None as they are; any
        other object becomes its redacted `str()`."""
        if isinstance(value, str):
            return self.redact(value)
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, Mapping):
            return {self.redact(str(k)): self.redact_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact_data(v) for v in value]
        return self.redact(str(value))
