"""A platform's own source keys, declared once as a frozen, typed dataclass.

Each platform's `options.py` subclasses `Options`; every field is declared
with `option()` (or `duration_option()`), which carries its validator and
its one-line doc beside its default. The loader checks a source's keys
against those fields, so a key's default, type and validation live in one
place, and readers get typed values (no casts, no repeated defaults).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, Self

from exporter.config.checker import Checker
from exporter.config.durations import format_duration
from exporter.config.validators import v_duration

_SPEC: Final = "exporter.option"
LOOKBACK_DOC: Final = "re-read this far behind the watermark on every poll, for late events"


def plain(value: object) -> object:
    """Options as YAML-dumpable plain data."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _render_duration(value: object) -> object:
    return format_duration(value) if isinstance(value, float | int) else value


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OptionSpec:
    """How one platform-specific key is checked, documented and shown."""

    validate: Callable[[object, str, Checker], object]
    doc: str
    required: bool = False
    # How `redacted()` shows the value (durations back to "30s").
    render: Callable[[object], object] = plain


def option(
    validate: Callable[[object, str, Checker], object],
    *,
    doc: str,
    default: object = dataclasses.MISSING,
    render: Callable[[object], object] = plain,
) -> Any:
    """A field of an `Options` dataclass; without `default` it is required."""
    spec = OptionSpec(validate=validate, doc=doc, required=default is dataclasses.MISSING, render=render)
    metadata = {_SPEC: spec}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    if default.__class__.__hash__ is None:  # a read-only mapping: dataclasses wants a factory
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def duration_option(default: float, doc: str) -> Any:
    return option(v_duration(), doc=doc, default=default, render=_render_duration)


class Options:
    """Base of each platform's options dataclass."""

    __slots__ = ()

    @classmethod
    def specs(cls) -> Mapping[str, OptionSpec]:
        """Key -> how it is checked, in declaration order."""
        return {f.name: f.metadata[_SPEC] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def defaults(cls) -> dict[str, object]:
        out: dict[str, object] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    @classmethod
    def build(cls, section: Mapping[str, object], path: str, ck: Checker) -> Self:
        """The options of one source, each key validated; a problem is
        recorded with its key path and the default stands in meanwhile
        (the loader raises before any placeholder is used)."""
        defaults = cls.defaults()
        values = {
            key: ck.get(section, key, path, spec.validate, defaults.get(key), required=spec.required)
            for key, spec in cls.specs().items()
        }
        return cls(**values)

    @classmethod
    def of(cls, options: Options) -> Self:
        """`options` as this platform's type (a reader built with another
        platform's config is a programming error, said plainly)."""
        if not isinstance(options, cls):
            raise TypeError(f"{cls.__name__} expected, got {type(options).__name__}")
        return options

    def rendered(self) -> dict[str, object]:
        return {key: spec.render(getattr(self, key)) for key, spec in self.specs().items()}


class PlatformSpec(Protocol):
    """What the loader needs to know of a platform (its registry entry)."""

    @property
    def name(self) -> str: ...

    @property
    def secret_key(self) -> str:
        """The YAML key whose value becomes SourceConfig.secret."""
        ...

    @property
    def doc(self) -> str: ...

    @property
    def options(self) -> type[Options]: ...
