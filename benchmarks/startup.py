"""Start-up: wall time of `agent-activity-exporter --help`, and from spawning
`agent-activity-exporter run -c config/demo.yaml` to its first /readyz 200
(the simulator already serving, in its own process).

Baselines, in the same run: the bare interpreter (`python -c pass`) and the
interpreter importing what `run` imports (`python -c "import exporter.app"`):
what start-up costs before any of the exporter's own work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import PY, ROOT, ExporterProc, median, sim_agents, start_simulator
from testkit.exporter_io import free_port

ENTRY = Path(PY).with_name("agent-activity-exporter")


def _wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _best_of(argv: list[str], n: int) -> tuple[float, float]:
    times = [_wall(argv) for _ in range(n)]
    return median(times), min(times)


def main(smoke: bool) -> dict[str, object]:
    n = 3 if smoke else 9
    entry = [str(ENTRY)] if ENTRY.exists() else [PY, "-m", "exporter"]
    _wall([PY, "-c", "pass"])  # warm the page cache: every variant then starts from the same place
    python = _best_of([PY, "-c", "pass"], n)
    imports = _best_of([PY, "-c", "import exporter.app"], n)
    help_ = _best_of([*entry, "--help"], n)
    ready: list[float] = []
    work = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    try:
        with start_simulator(rpm=0.0) as sim:
            for i in range(n):
                port = free_port()
                demo = work / f"demo{i}"
                demo.mkdir()
                env = {
                    "DEMO_DIR": str(demo),
                    "DEMO_LISTEN": f"127.0.0.1:{port}",
                    "SIM_RUNTOOLS_URL": sim.url + "/runtools",
                    "SIM_AGENT_ACTIVITIES_URL": sim.url + "/agent-activities",
                    "SIM_BCTRL_URL": sim.url + "/bctrl",
                    "SIM_RUNTYPE_URL": sim.url + "/runtype",
                    "SIM_AGENT_ACTIVITIES_AGENTS": ",".join(sim_agents("agent_activities")),
                }
                saved = {k: os.environ.get(k) for k in env}
                os.environ.update(env)
                try:
                    with ExporterProc(ROOT / "config" / "demo.yaml", port, demo / "exporter.log") as ex:
                        ready.append(ex.wait_ready(timeout=30))
                finally:
                    for k, v in saved.items():
                        if v is None:
                            os.environ.pop(k, None)
                        else:
                            os.environ[k] = v
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "runs": n,
        "python_pass_s": python[0],
        "import_app_s": imports[0],
        "help_s": help_[0],
        "help_min_s": help_[1],
        "readyz_s": median(ready),
        "readyz_min_s": min(ready),
    }
