"""A fake of all four agent platforms over real HTTP.

A second, independent reading of the platforms (docs/platforms.md), sharing
no code with the rest of the exporter: a bug in a shared parser would
otherwise make both sides agree and the tests prove nothing. Used by the
integration tests, benchmarks and the demo:

    from simulator import Simulator, SimulatorOptions, parse_faults
    sim = Simulator(SimulatorOptions(seed=1, faults=parse_faults("429=0.1"),
                                     latency_seconds=parse_latency("50ms-300ms"), rate_limit=10))
    base = sim.start(port=0)          # "http://127.0.0.1:PORT"
    sim.url("runtools")               # base + "/runtools"
    sim.truth()                       # what has finished, normalised (truth.py)
    sim.stop()

A package of its own beside `exporter/`, importing nothing from it
(tests/unit/test_layering.py checks both ways). Its modules:

    app.py        the HTTP front: routing to platforms, auth, faults, /_truth, /_control
    server.py     the HTTP server;  wire.py  requests, responses, JSON types
    options.py    what a simulator is built from; clock.py  virtual time (pause/resume)
    specs.py      agents, runs, tool calls as drawn
    profiles.py   how platforms differ; generate.py  runs drawn from an RNG
    world.py      a platform's store: what has become visible by "now"
    <platform>.py           a platform's routes, queries, pagination and truth
    <platform>_records.py   how its runs look (runtools_events.py: its feed's events;
                            runtype_pages.py: its cursor pagination)
    faults.py, hostile.py, limits.py   injected faults, junk and rewinds, latency and rate limit
    truth.py      what finished, normalised;  timefmt.py, cursors.py  small helpers
"""

from simulator.app import Simulator
from simulator.faults import FaultSpec, parse_faults
from simulator.limits import parse_latency
from simulator.options import DEFAULT_KEYS, PLATFORMS, PREFIXES, SimulatorOptions

__all__ = [
    "DEFAULT_KEYS",
    "PLATFORMS",
    "PREFIXES",
    "FaultSpec",
    "Simulator",
    "SimulatorOptions",
    "parse_faults",
    "parse_latency",
]
