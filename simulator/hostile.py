"""The hostile faults that deform a page's content rather than replace it
(docs/platforms.md, "What every reader must survive"): timestamps in other forms,
runs whose status goes backwards, and malformed items.

The fault injector (faults.py) decides *whether* one applies to a response;
this module says *how*, with helpers the platform modules use to describe
their own items. Every choice comes from the per-request RNG the injector
hands over (drawn from the fault RNG), never from the world's. None of these
changes the truth: a rewound run is only *shown* in an earlier state, and a
junk item is about no real run or event and carries no usable id.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Protocol, TypeVar

from simulator.timefmt import parse_iso_us, to_datetime
from simulator.wire import JsonObject, JsonValue, Response

T = TypeVar("T")

# -- oddtime ------------------------------------------------------------------

# A timestamp as the platforms write them (and as oddtime rewrites them):
# date, time, an optional fraction and an explicit zone. Only whole string
# values that match are rewritten; cursors are opaque base64 and never match.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})")
# Offsets in minutes east of UTC: half and quarter hours included.
ODD_OFFSETS: tuple[int, ...] = (330, -480, 540, -210, 345, 60, -300)
# (offset or None for "Z", fractional digits). Every form differs from both
# forms the platforms use by default (ms + "Z", and µs + "+00:00").
_FORMS: tuple[tuple[bool, int], ...] = ((True, 3), (True, 6), (True, 9), (False, 9))
SUB_MICRO_NS = 500  # nanoseconds below the µs: 0..499, so truncating or rounding to µs keeps the instant


def oddtime(payload: JsonValue, rng: random.Random) -> tuple[JsonValue, int]:
    """A copy of `payload` in which every timestamp value is the same instant
    (to the microsecond) written in one other form for the whole response: a
    non-Z offset with 3, 6 or 9 fractional digits, or "Z" with 9 digits.
    Nine digits carry 0-499 ns below the microsecond. Returns the copy and
    how many values were rewritten. The input is not changed (its items may
    be remembered by the dup fault)."""
    use_offset, digits = _FORMS[int(rng.random() * len(_FORMS))]
    offset = ODD_OFFSETS[int(rng.random() * len(ODD_OFFSETS))] if use_offset else None
    count = 0

    def rewrite(value: JsonValue) -> JsonValue:
        nonlocal count
        if isinstance(value, str):
            if not _TIMESTAMP.fullmatch(value):
                return value
            try:
                us = parse_iso_us(value, require_tz=True)
            except ValueError:
                return value  # a junk item's garbage timestamp stays garbage
            count += 1
            nanos = int(rng.random() * SUB_MICRO_NS) if digits == 9 else 0
            return odd_form(us, offset, digits, nanos)
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        return value

    return rewrite(payload), count


def odd_form(us: int, offset_minutes: int | None, digits: int, nanos: int = 0) -> str:
    """`us` microseconds since the epoch at `offset_minutes` east of UTC (None:
    "Z"), with `digits` (3, 6 or 9) fractional digits; `nanos` (< 1000) fills
    the digits past the microsecond. Fewer than 6 digits only when they lose
    nothing (the platforms' times are whole milliseconds)."""
    dt = to_datetime(0) + timedelta(microseconds=us)
    zone = "Z"
    if offset_minutes is not None:
        dt = dt.astimezone(timezone(timedelta(minutes=offset_minutes)))
        sign = "+" if offset_minutes >= 0 else "-"
        hours, minutes = divmod(abs(offset_minutes), 60)
        zone = f"{sign}{hours:02d}:{minutes:02d}"
    if dt.microsecond % 1000 and digits < 6:
        digits = 6
    fraction = f"{dt.microsecond:06d}{nanos:03d}"[:digits]
    return f"{dt.strftime('%Y-%m-%dT%H:%M:%S')}.{fraction}{zone}"


# -- backwards ----------------------------------------------------------------

REWIND_MIN_AGE_MS = 5_000  # only runs finished at least this long ago are rewound
_REWIND_TO_PENDING = 0.25  # share of rewinds that go back before the start (where the run had a queued time)


class Timed(Protocol):
    """What a rewind needs of a run (specs.RunSpec has it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def created_ms(self) -> int: ...
    @property
    def start_ms(self) -> int: ...
    @property
    def end_ms(self) -> int: ...


R = TypeVar("R", bound=Timed)


def pick_rewind(rng: random.Random, runs: Sequence[R], now_ms: int) -> tuple[R, int] | None:
    """One run of `runs` that finished at least REWIND_MIN_AGE_MS before
    `now_ms`, and an earlier moment to show it at: while it ran, or now and
    then while it was still pending. None when no run qualifies."""
    eligible = [run for run in runs if run.end_ms <= now_ms - REWIND_MIN_AGE_MS]
    if not eligible:
        return None
    run = eligible[int(rng.random() * len(eligible))]
    if run.start_ms > run.created_ms and rng.random() < _REWIND_TO_PENDING:
        return run, run.created_ms + (run.start_ms - run.created_ms) // 2
    return run, run.start_ms + int(rng.random() * (run.end_ms - run.start_ms))


def rewind_list(
    response: Response, runs: Sequence[R], now_ms: int, render: Callable[[R, int], JsonObject]
) -> Callable[[random.Random], bool]:
    """A `Response.rewind` for a list page whose items are `runs` (rendered
    by `render(run, at_ms)`): one qualifying run re-rendered at an earlier moment."""

    def rewind(rng: random.Random) -> bool:
        picked = pick_rewind(rng, runs, now_ms)
        listing = response.listing
        if picked is None or listing is None:
            return False
        run, at_ms = picked
        items = listing.items(response.payload)
        if not replace_by_id(items, run.run_id, render(run, at_ms)):
            return False
        listing.set_items(response.payload, items)
        return True

    return rewind


def rewind_detail(
    response: Response,
    run: R,
    now_ms: int,
    render: Callable[[R, int], JsonObject],
    wrap: Callable[[JsonObject], JsonValue],
) -> Callable[[random.Random], bool]:
    """A `Response.rewind` for a single run: the whole payload becomes
    `wrap(render(run, at_ms))` when the run qualifies."""

    def rewind(rng: random.Random) -> bool:
        picked = pick_rewind(rng, [run], now_ms)
        if picked is None:
            return False
        response.payload = wrap(render(run, picked[1]))
        return True

    return rewind


def replace_by_id(items: list[JsonValue], run_id: str, rendered: JsonObject) -> int:
    """Put `rendered` in place of every item whose id is `run_id` (a list
    page may hold it twice under the dup fault). Replaces, never mutates, the
    items: the dup fault remembers them. Returns how many were replaced."""
    count = 0
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("id") == run_id:
            items[i] = rendered
            count += 1
    return count


# -- junk ---------------------------------------------------------------------

Path = tuple[str, ...]
_MISSING = object()
# Ids no reader can take for a string id. Never an integer: a lenient reader
# may turn 12345 into "12345" and take the item for a real record.
_BAD_IDS: tuple[object, ...] = (_MISSING, _MISSING, None, {"value": "junk"}, ["junk"], True)
_GARBAGE_TIMES: tuple[JsonValue, ...] = (
    "yesterday",
    "2026-13-45T25:61:00Z",
    "0000-00-00T00:00:00Z",
    "",
    1778414400,
    {"seconds": 1778414400},
)
JUNK_MARK = "junk"  # in every id a junk item makes up: no real id contains it


@dataclass(frozen=True, slots=True)
class JunkShape:
    """A plausible item of one listing, about no real run or event, and where
    its defects may go. `item` holds a made-up id at every `id_paths`; the
    other paths may be absent from `item`."""

    item: JsonObject
    id_paths: tuple[Path, ...] = (("id",),)
    time_paths: tuple[Path, ...] = ()
    unknown_enums: Mapping[Path, JsonValue] = field(default_factory=dict)  # path -> a value outside the enum
    wrong_types: Mapping[Path, JsonValue] = field(default_factory=dict)  # path -> a value of the wrong type
    required: tuple[Path, ...] = ()  # fields a reader needs besides the id


JunkFactory = Callable[[random.Random], JsonObject]


def make_junk(shape: JunkShape, rng: random.Random) -> JsonObject:
    """The shape's item made malformed: its id missing or not a string, always
    (so every reader rejects it), plus now and then one more defect: a garbage
    timestamp, an unknown enum value, a field of the wrong type, or required
    fields missing."""
    item = copy.deepcopy(shape.item)
    bad_id = _BAD_IDS[int(rng.random() * len(_BAD_IDS))]
    for path in shape.id_paths:
        if bad_id is _MISSING:
            _delete(item, path)
        else:
            _set(item, path, copy.deepcopy(bad_id))  # type: ignore[arg-type]  # JSON, _MISSING excluded
    defects: list[Callable[[], None]] = [lambda: None]
    if shape.time_paths:
        defects.append(lambda: _set(item, _choice(rng, shape.time_paths), copy.deepcopy(_choice(rng, _GARBAGE_TIMES))))
    if shape.unknown_enums:

        def unknown_enum() -> None:
            path = _choice(rng, tuple(shape.unknown_enums))
            _set(item, path, shape.unknown_enums[path])

        defects.append(unknown_enum)
    if shape.wrong_types:

        def wrong_type() -> None:
            path = _choice(rng, tuple(shape.wrong_types))
            _set(item, path, copy.deepcopy(shape.wrong_types[path]))

        defects.append(wrong_type)
    if shape.required:

        def missing() -> None:
            for path in shape.required:
                if rng.random() < 0.5:
                    _delete(item, path)

        defects.append(missing)
    _choice(rng, defects)()
    return item


def insert_junk(items: list[JsonValue], junk: JsonObject, rng: random.Random) -> list[JsonValue]:
    """The page's items with `junk` at a random position among them."""
    position = int(rng.random() * (len(items) + 1))
    return [*items[:position], junk, *items[position:]]


def junk_hex(rng: random.Random, width: int) -> str:
    """`width` characters: "junk" and hex digits; never a real id's tail
    (real ids are pure hex or uuids)."""
    return JUNK_MARK + "".join(
        "0123456789abcdef"[int(rng.random() * 16)] for _ in range(max(0, width - len(JUNK_MARK)))
    )


def junk_uuid(rng: random.Random) -> str:
    """Looks like a uuid but is version 0 with a non-hex tail: never a real uuid4."""
    digits = "".join("0123456789abcdef"[int(rng.random() * 16)] for _ in range(20))
    return f"{digits[:8]}-{digits[8:12]}-0{digits[12:15]}-{digits[15:19]}-{digits[19]}{JUNK_MARK}0000000"


def _choice(rng: random.Random, options: Sequence[T]) -> T:
    # Not rng.choice: one random() per choice keeps the number of draws plain.
    return options[int(rng.random() * len(options))]


def _set(item: JsonObject, path: Path, value: JsonValue) -> None:
    node: JsonValue = item
    for name in path[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(name, {})
    if isinstance(node, dict):
        node[path[-1]] = value


def _delete(item: JsonObject, path: Path) -> None:
    node: JsonValue = item
    for name in path[:-1]:
        if not isinstance(node, dict):
            return
        node = node.get(name)
    if isinstance(node, dict):
        node.pop(path[-1], None)
