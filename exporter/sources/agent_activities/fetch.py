"""agent_activities: the requests, and which of them are fetched ahead.

The fetch functions (`Fetch.page`, `Fetch.detail`) run on the source's worker
threads: a request and pure parsing only, no state. The reader decides what
to ask and handles every answer on the poll thread.

Concurrency (the source's `concurrency` workers, `Workers.map_ordered` and
the kit's `ahead`): requests whose page number or id is known before their
turn are fetched ahead, and handled on the poll thread in the order a
sequential read asks for them, so batches, checkpoints and counters are
those of that read:
- the first listing page of every agent's window, and its in-flight listing
  when it is certain to be asked (the agent has runs open, or its countdown
  is out), across agents (`FirstPages`); an agent that fails has the
  requests of its own not sent yet dropped;
- the details of a page's newly finished runs (`details_ahead`);
- pages 2..total_pages of a listing once a page gave total_pages (`pages`;
  a page whose server page size changed still restarts the window at page
  1: what was fetched past it is dropped);
- an agent's re-checks by id (`details`).
A request fetched ahead that a sequential read would not have sent (past a
page that turned out the last, of an agent that failed) is only a wasted
request, its answer unused; an error of one is raised only where the reader
takes its answer. With one worker `map_ordered` is plain `map` on the
calling thread: every request is then sent when the reader takes its
result, exactly as a sequential read sends it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from contextlib import closing
from functools import partial

from exporter.sources.agent_activities import checkpoint
from exporter.sources.agent_activities.api import (
    DETAIL_FIELDS,
    DETAIL_PATH,
    LIST_PATH,
    Page,
    detail_attributes,
    parse_page,
)
from exporter.sources.ahead import Ahead, Fetched, attempt
from exporter.sources.concurrency import Workers
from exporter.sources.http import ApiClient, NotFound
from exporter.sources.windows import Window

WINDOW, INFLIGHT = "window", "inflight"  # the requests of an agent known when the poll starts

Request = tuple[dict[str, object], int]  # a listing's parameters and page number
Key = tuple[str, str]  # (agent, WINDOW or INFLIGHT)
Detail = dict[str, object] | None  # a run detail's attributes; None: 404


class Fetch:
    """The requests of one agent_activities source."""

    def __init__(self, source: str, client: ApiClient, workers: Workers, per_page: int) -> None:
        self._source = source
        self._client = client
        self.workers = workers
        self._per_page = per_page

    def window_request(self, window: Window) -> Request:
        """The first request of a completed window: where it resumes."""
        completed_from, completed_to = window.query()
        params: dict[str, object] = {
            "completed_on_from": completed_from,
            "completed_on_to": completed_to,
            "has_completed": "true",
            "sort": "+completed_on",
            "per_page": self._per_page,
        }
        return params, checkpoint.resume_at(window)[0]

    def inflight_request(self) -> Request:
        return {"has_completed": "false", "sort": "+created_on", "per_page": self._per_page}, 1

    def page(self, uid: str, params: Mapping[str, object], page: int) -> Page:
        """One listing page (`params` plus the page number). Runs on worker
        threads: a request and pure parsing only."""
        body = self._client.get_json(LIST_PATH.format(agent=uid), {**params, "page": page})
        return parse_page(self._source, body, page)

    def detail(self, uid: str, run_id: str, *, with_fields: bool) -> Detail:
        """The detail's attributes; None when the run is not found (404).
        Runs on worker threads: a request and pure parsing only."""
        params: dict[str, object] = {"fields[agent-runs]": DETAIL_FIELDS} if with_fields else {}
        try:
            body = self._client.get_json(DETAIL_PATH.format(agent=uid, run=run_id), params)
        except NotFound:  # only "run not found" means the run was deleted
            return None
        return detail_attributes(self._source, body)

    def pages(
        self, uid: str, params: Mapping[str, object], page: int, first: Page | None
    ) -> Generator[Page, None, None]:
        """Pages `page`, `page + 1`, ... of a listing, in order, for as long as
        the caller reads on (it stops at its last page; close the generator).
        `first`: page `page`, fetched ahead already. Once a page has given
        total_pages, the pages up to it are fetched ahead (at most the
        workers' size at once); when the last of them says there are more,
        on to the new total."""
        listing = first if first is not None else self.page(uid, params, page)
        yield listing
        fetch = partial(self.page, uid, params)
        while True:
            # The caller read on past `page`: that page's total_pages is further.
            numbers = range(page + 1, max(listing.total_pages, page + 1) + 1)
            with closing(self.workers.map_ordered(fetch, numbers)) as later:
                for listing in later:
                    page += 1
                    yield listing

    def details(self, uid: str, run_ids: list[str], *, with_fields: bool) -> Generator[Detail, None, None]:
        """The details of `run_ids`, in order (an error in the place of its
        run); close the generator when the reader stops early."""
        return self.workers.map_ordered(partial(self.detail, uid, with_fields=with_fields), run_ids)

    def details_ahead(self, uid: str, run_ids: list[str]) -> Ahead[str, Fetched[Detail]]:
        """The details (with fields) of a page's newly finished runs, in the
        order the reader handles them, taken by run id."""

        def one(run_id: str) -> tuple[str, Fetched[Detail]]:
            return run_id, attempt(lambda: self.detail(uid, run_id, with_fields=True))

        return Ahead(run_ids, self.workers.map_ordered(one, run_ids))


class FirstPages:
    """The requests of every agent known when the poll starts (`plan`, in the
    order the reader takes them): its window's first page, and its in-flight
    listing's when it is certain to be asked. `take(key)`: the page, its
    error raised here; None for a key not planned (the reader fetches it).
    `drop(uid)`: the requests of that agent not sent yet are not sent."""

    def __init__(self, fetch: Fetch, plan: Mapping[Key, Request]) -> None:
        self._dropped: set[str] = set()  # read and written on the poll thread only

        def one(key: Key) -> tuple[Key, Fetched[Page]]:
            return key, attempt(lambda: fetch.page(key[0], *plan[key]))

        self._ahead = Ahead(plan, fetch.workers.map_ordered(one, self._pending(plan)))

    def _pending(self, keys: Mapping[Key, Request]) -> Iterator[Key]:
        # Iterated by map_ordered on the thread that takes results: the poll thread.
        for key in keys:
            if key[0] not in self._dropped:
                yield key

    def take(self, key: Key) -> Page | None:
        got = self._ahead.take(key)
        return None if got is None else got.get()

    def drop(self, uid: str) -> None:
        self._dropped.add(uid)

    def close(self) -> None:
        """Cancel what is not sent yet (the poll ended or failed)."""
        self._ahead.close()
