"""Nothing lost, nothing doubled, with everything going wrong at once.

One exporter process reads all four platforms from a simulator injecting
every fault it has (429 with both Retry-After forms, 5xx, HTML with 200,
truncated JSON, slow answers, repeated items and cursors), the trace backend
answers 503 for a while and rejects nothing, and the exporter is killed with
SIGKILL at random moments and restarted on the same state file. In the end
the traces and every counter equal the simulator's truth, a span sent twice
is identical, and no secret appears in any output.
"""

from __future__ import annotations

import random
from pathlib import Path

from simulator import Simulator
from tests.integration.helpers import assert_no_secret, by_label, chaos_options, chaos_run


def test_kill_9_faults_and_outages_end_equal_to_the_truth(tmp_path: Path) -> None:
    sim = Simulator(chaos_options())
    sim.start(host="127.0.0.1", port=0)
    metrics, everything = chaos_run(tmp_path, sim, random.Random(20261123))
    faults = by_label(metrics, "agent_exporter_api_requests_total", "code")
    assert faults.get("429", 0) > 0 and faults.get("500", 0) > 0, "the faults were exercised"
    assert sum(by_label(metrics, "agent_exporter_spans_exported_total", "outcome", outcome="failure").values()) > 0
    assert_no_secret(everything)
