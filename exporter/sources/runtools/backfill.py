"""runtools: the concurrent backfill (issue #15).

Settled windows (reader.py) do not depend on each other, so with
`concurrency` above 1 they are planned ahead, end to end (each of the span
current when it is planned, the last one cut at the settled horizon
`now - lookback`), and each planned window's page chain is fetched on a
worker (at most PREFETCH_COMMITS committed batches of it; the poll thread
follows the rest of a longer chain itself). Windows are consumed in order on
the poll thread exactly as a sequential read consumes them: ingested page by
page, committed every PAGES_PER_COMMIT pages, checkpointed, finalized. The
span adapts as each window is consumed, from that window's own span and
pages (so a sparse start grows the span once per window consumed, not once
per window planned ahead); windows already planned keep theirs. A fresh
window much longer than its share of what is left (as after a sparse
stretch the span has grown to `max_window`) is cut to that share, so a dense
stretch after it is read by every worker. The workers fetch up to AHEAD
windows each ahead of the poll thread, so they do not idle while it ingests
a window or waits for a long one. Only
requests and page parsing run on workers; a failed request comes out in its
place, after the pages fetched before it. Live windows stay sequential.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from exporter.model import Batch
from exporter.sources.ahead import Fetched, attempt
from exporter.sources.base import CursorGuard, PollContext
from exporter.sources.runtools.api import Page
from exporter.sources.runtools.position import MIN_SPAN, Position, whole_ms
from exporter.sources.windows import Progress, Window

if TYPE_CHECKING:
    from exporter.sources.runtools.reader import RuntoolsSource

# A window fetched ahead holds at most this many committed batches of pages
# in memory (the span adaptation keeps most windows to about one); the poll
# thread reads the rest of a longer window itself.
PREFETCH_COMMITS = 3
# Windows planned and fetched ahead of the one the poll thread reads, in
# workers: beyond one each, the workers go on fetching while the poll thread
# ingests a window's pages or waits for a long one, instead of idling.
AHEAD = 2
# While the span is still growing, a fresh window is cut to this many
# workers' shares of what is left (see _share).
SHARE = 2


@dataclass(slots=True)
class Prefetched:
    """A settled window's pages, fetched ahead on a worker: from its start
    (or resume cursor) on, until its end, a failure or the prefetch limit."""

    window: Window
    guard: CursorGuard  # the window's cursors so far (handed over with the result)
    pages: list[Page] = field(default_factory=list)
    # How the fetch ended: the cursor the poll thread goes on from (the
    # prefetch limit reached), None at the window's end, or the error,
    # raised once the pages before it are consumed.
    end: Fetched[str | None] = field(default_factory=lambda: Fetched(None))


def backfill(
    source: RuntoolsSource, ctx: PollContext, first: Window, position: Position, now: datetime, pages_per_commit: int
) -> Generator[Batch, None, Position]:
    """Settled windows from `first` on, fetched several at once and consumed
    in order, as the sequential loop consumes them; returns the position
    after the last one (the next window is not settled). `pages_per_commit`:
    the pages of one committed batch."""
    prefetch = partial(_prefetch, source, PREFETCH_COMMITS * pages_per_commit)
    # Closed when the poll stops or fails: the windows not yet started are not fetched.
    depth = AHEAD * source.workers.size
    with closing(source.workers.map_ordered(prefetch, _plan(source, ctx, first, now), depth)) as fetched:
        for ahead in fetched:
            window = ahead.window
            pages = yield from source.read_window(ctx, window, position, _prefetched(source, ahead))
            # From the window's own span: the span may have been adapted
            # by the windows consumed since this one was planned.
            source.adapt_span(pages, window.until - position.progress.watermark)
            position = Position(position.progress.finished(window), True, window.until - source.edge)
            yield from source.finalize(ctx, window.until, position.to_json())
    return position


def _plan(source: RuntoolsSource, ctx: PollContext, first: Window, now: datetime) -> Iterator[Window]:
    """`first`, then the windows a sequential read would read after it, each
    of the span current when it is asked for (pulled lazily by map_ordered,
    on the poll thread, as earlier windows are consumed), up to the settled
    horizon `now - lookback`: the last one is cut there, so only the live
    part after it is read alone."""
    horizon = whole_ms(ctx.now - source.lookback)
    window: Window | None = first if first.resume else _share(source, first, horizon)
    while window is not None and source.settled(ctx, window.until):
        yield window
        if window.until >= horizon:
            return
        after = Position(Progress(window.until), True, window.until - source.edge)
        window = source.next_window(after, now)
        if window is not None:
            window = _share(source, Window(window.since, min(window.until, horizon)), horizon)


def _share(source: RuntoolsSource, window: Window, horizon: datetime) -> Window:
    """A fresh window cut to its share of what is left to the horizon when
    it is much longer than that, while the span is growing: after a sparse
    stretch the span has grown to `max_window`, and one window is one chain
    of pages, read a request at a time; cut to 1/(SHARE x workers) of the
    rest, a dense stretch that follows is read by all the workers. Windows
    about their share, and all once a dense window has set the span, are
    left alone: cut further, the last windows before the horizon would
    shrink to a page or less each, a commit and a partial page apiece."""
    share = (horizon - window.since) / (SHARE * source.workers.size)
    if not source.growing or window.until - window.since <= 2 * share or share < MIN_SPAN:
        return window
    return Window(window.since, whole_ms(window.since + share))


def _prefetch(source: RuntoolsSource, limit: int, window: Window) -> Prefetched:
    """On a worker: the window's page chain, up to `limit` pages (when more
    follow). Only requests and parsing: no state is read."""
    ahead = Prefetched(window, CursorGuard(source.name))
    ahead.end = attempt(lambda: _follow(source, limit, ahead))
    return ahead


def _follow(source: RuntoolsSource, limit: int, ahead: Prefetched) -> str | None:
    """The window's pages appended to `ahead`; the cursor to go on from."""
    with closing(source.pages(ahead.window, guard=ahead.guard)) as chain:
        for fetched in chain:
            ahead.pages.append(fetched)
            if fetched.next_cursor is not None and len(ahead.pages) >= limit:
                return fetched.next_cursor
    return None


def _prefetched(source: RuntoolsSource, ahead: Prefetched) -> Iterator[Page]:
    """On the poll thread: the window's fetched pages, then its failure, or
    the rest of its chain."""
    yield from ahead.pages
    cursor = ahead.end.get()
    if cursor is not None:
        yield from source.pages(ahead.window, cursor, ahead.guard)
