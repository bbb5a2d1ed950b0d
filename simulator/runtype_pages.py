"""runtype: its cursor pagination (runtype.py lists with it): a page of ids
in listing order, the cursor being the id of the next page's first item, with
the platform's `pagination` object (offsets, pages, counts on request).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from simulator.specs import RunSpec
from simulator.wire import BadRequest, JsonObject, Request

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class Newest(Sequence[int]):
    """log values [lo, hi) as a newest-first sequence, without copying."""

    def __init__(self, values: Sequence[int], lo: int, hi: int) -> None:
        self._values, self._lo, self._hi = values, lo, hi

    def __len__(self) -> int:
        return self._hi - self._lo

    def __getitem__(self, i: int) -> int:  # type: ignore[override]
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._values[self._hi - 1 - i]


class Ids(Sequence[str]):
    """The execution ids of a sequence of seqs."""

    def __init__(self, runs: Sequence[RunSpec], seqs: Sequence[int]) -> None:
        self._runs, self._seqs = runs, seqs

    def __len__(self) -> int:
        return len(self._seqs)

    def __getitem__(self, i: int) -> str:  # type: ignore[override]
        return self._runs[self._seqs[i]].run_id


class Page:
    def __init__(self, indices: list[int], pagination: JsonObject) -> None:
        self.indices = indices
        self.pagination = pagination


def paginate(
    request: Request,
    ids: Sequence[str],
    locate: Callable[[str], int | None],
    keep: Callable[[int], bool] | None,
) -> Page:
    """One page of `ids` (already in listing order) that `keep` accepts (None:
    all); the cursor is the id of the page's first item, found by `locate`.
    With a filter, counting what lies before the page walks it: O(position)."""
    limit = min(request.int_arg("limit", DEFAULT_LIMIT), MAX_LIMIT)
    include_count = (request.arg("includeCount") or "").lower() == "true"
    accept = keep or (lambda i: True)
    start = 0
    cursor = request.arg("cursor")
    if cursor:
        found = locate(cursor)
        if found is None:
            raise BadRequest("invalid cursor")
        start = found
    indices: list[int] = []
    next_index: int | None = None
    for i in range(start, len(ids)):
        if not accept(i):
            continue
        if len(indices) == limit:
            next_index = i
            break
        indices.append(i)
    # Items before this page: count them (cheap without a filter), and find
    # where the previous page would begin.
    if keep is None:
        offset = start
        prev_index: int | None = max(0, start - limit) if start > 0 else None
    else:
        above = [i for i in range(start) if accept(i)]
        offset = len(above)
        prev_index = above[-limit] if len(above) >= limit else (above[0] if above else None)
    total: int | None = None
    if include_count:
        total = len(ids) if keep is None else offset + sum(1 for i in range(start, len(ids)) if accept(i))
    pagination: JsonObject = {
        "nextCursor": ids[next_index] if next_index is not None else None,
        "prevCursor": ids[prev_index] if prev_index is not None else None,
        "hasMore": next_index is not None,
        "hasPrev": offset > 0,
        "limit": limit,
        "currentOffset": offset,
        "totalPages": math.ceil(total / limit) if total is not None else None,
        "currentPage": offset // limit + 1,
        "totalCount": total,
    }
    return Page(indices, pagination)


def finder(ids: list[str]) -> Callable[[str], int | None]:
    """locate() for a short list held in memory."""
    where = {value: i for i, value in enumerate(ids)}
    return where.get
