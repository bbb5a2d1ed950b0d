"""The validation machinery: a checker that collects every problem with its
key path, the markers substitution leaves in the tree, and the helpers that
word messages."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Final, NoReturn, TypeVar

import yaml

T = TypeVar("T")


class Invalid(Exception):
    """Raised by a validator after it has recorded its problem."""


class Unresolved:
    """Stands for a value whose ${VAR} could not be substituted. The problem
    is already recorded; validators skip it instead of adding a second one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unresolved>"


UNRESOLVED: Final = Unresolved()


class Substituted(str):
    """A string produced by ${VAR} substitution.

    Environment variables are always text, so `max_agents: ${MAX_AGENTS}`
    would otherwise never be a valid integer. Only such strings are read as
    YAML scalars where a number or bool is expected; a literal "10" written
    in the file stays a type error, as typed YAML should be.
    """

    __slots__ = ()


class Checker:
    """Collects problems; owns the small helpers that read typed fields."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def fail(self, path: str, message: str) -> NoReturn:
        self.add(path, message)
        raise Invalid

    def mapping(
        self,
        value: object,
        path: str,
        allowed: Collection[str],
        *,
        hints: Mapping[str, str] | None = None,
        elsewhere: Mapping[str, str] | None = None,
    ) -> dict[str, object]:
        """A mapping's known keys; each unknown key is a problem naming it.

        `hints` maps a wrong key to the right one where difflib cannot guess
        (runtools' `token` -> `api_key`); `elsewhere` says which other source
        types a key belongs to.
        """
        if value is None or isinstance(value, Unresolved):
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping (got {show(value)})")
        known: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.add(join_path(path, str(key)), f"keys must be strings (got {show(key)})")
                continue
            if key not in allowed:
                self.add(join_path(path, key), _unknown_key_message(key, allowed, hints, elsewhere))
                continue
            known[key] = item
        return known

    def section(self, parent: Mapping[str, object], key: str, path: str, allowed: Collection[str]) -> dict[str, object]:
        """A nested mapping such as `traces`; missing or invalid -> {} (defaults)."""
        try:
            return self.mapping(parent.get(key), join_path(path, key), allowed)
        except Invalid:
            return {}

    def get(
        self,
        section: Mapping[str, object],
        key: str,
        path: str,
        validate: Callable[[object, str, Checker], T],
        default: T,
        *,
        required: bool = False,
    ) -> T:
        """`section[key]` validated, else `default`.

        On a problem the default is returned as a placeholder so checking
        goes on; `load_config` raises before any placeholder is used.
        """
        key_path = join_path(path, key)
        if key not in section:
            if required:
                self.add(key_path, "required")
            return default
        value = section[key]
        if isinstance(value, Unresolved):
            return default
        try:
            return validate(value, key_path, self)
        except Invalid:
            return default


def and_list(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def show(value: object, limit: int = 60) -> str:
    """A value quoted for a message, YAML-flavoured and bounded in length."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(str(value))
    elif isinstance(value, dict):
        return "a mapping"
    elif isinstance(value, list):
        return "a list"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def kind_of(value: object) -> str:
    """A value's type in words; used where the value itself may be secret."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _unknown_key_message(
    key: str,
    allowed: Collection[str],
    hints: Mapping[str, str] | None,
    elsewhere: Mapping[str, str] | None,
) -> str:
    note = ""
    if elsewhere and key in elsewhere:
        note = f"; it is a key of {elsewhere[key]} sources"
    suggestion = (hints or {}).get(key)
    if suggestion is None:
        close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
        suggestion = close[0] if close else None
    if suggestion is not None:
        return f"unknown key{note} (did you mean '{suggestion}'?)"
    return f"unknown key{note} (valid keys: {', '.join(sorted(allowed))})"


def scalar_from_env(value: object) -> object:
    """A substituted string read as a YAML scalar ("10" -> 10, "true" -> True)."""
    if isinstance(value, Substituted):
        try:
            parsed = yaml.safe_load(str(value))
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, bool | int | float):
            return parsed
    return value


class Anything(Collection[str]):
    """`allowed` for mappings whose keys are free (headers, ...)."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0
