"""A fake of all four agent platforms over real HTTP.

A second, independent reading of the platforms (docs/platforms.md), sharing
no code with the rest of the exporter: a bug in a shared parser would
otherwise make both sides agree and the tests prove nothing. Used by the
integration tests, benchmarks and the demo:

    from exporter.simulator import Simulator, SimulatorOptions, parse_faults
    sim = Simulator(SimulatorOptions(seed=1, faults=parse_faults("429=0.1"),
                                     latency_seconds=parse_latency("50ms-300ms"), rate_limit=10))
    base = sim.start(port=0)          # "http://127.0.0.1:PORT"
    sim.url("runtools")               # base + "/runtools"
    sim.truth()                       # what has finished, normalised (truth.py)
    sim.stop()
"""

from exporter.simulator.app import Simulator
from exporter.simulator.faults import FaultSpec, parse_faults
from exporter.simulator.limits import parse_latency
from exporter.simulator.options import DEFAULT_KEYS, PLATFORMS, PREFIXES, SimulatorOptions

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
