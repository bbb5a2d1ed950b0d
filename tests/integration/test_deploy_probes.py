"""deploy/kubernetes/'s probes and scrape annotation against the real
exporter: the paths the kubelet and Prometheus would ask for answer on the
port the ConfigMap's config listens on, with the ConfigMap's config as
shipped (state in a real PostgreSQL, a source in shards).
(tests/unit/test_deploy.py checks that the probes name that port.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from testkit.exporter_io import free_port
from tests.conftest import wait_for
from tests.integration.helpers import ExporterProcess
from tests.unit.test_deploy import container, k8s_config_text, k8s_env, manifests


def test_probe_and_scrape_paths_answer_on_the_exporter(tmp_path: Path, postgres_url: str) -> None:
    config = yaml.safe_load(k8s_config_text())
    port = free_port()
    config["listen"] = f"127.0.0.1:{port}"
    for source in config["sources"]:
        source["base_url"] = "http://127.0.0.1:9"  # nothing listens: the probes do not depend on the platforms
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**k8s_env(), "EXPORTER_STATE_URL": postgres_url}
    exporter = ExporterProcess(path, port, tmp_path / "exporter.log", env=env)
    exporter.start()
    try:
        for probe in ("readinessProbe", "livenessProbe"):
            answer = httpx.get(f"{exporter.url}{container()[probe]['httpGet']['path']}", timeout=5)
            assert answer.status_code == 200, (probe, answer.text)
        annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
        scraped = httpx.get(f"{exporter.url}{annotations['prometheus.io/path']}", timeout=5)
        assert scraped.status_code == 200 and "agent_exporter_build_info" in scraped.text
        # The one replica takes every lease (a sharded source is one per shard).
        wait_for(
            lambda: "agent_exporter_leases_held" in httpx.get(f"{exporter.url}/metrics", timeout=5).text,
            timeout=20,
            what="the lease gauge",
        )
        assert httpx.get(f"{exporter.url}/no-such-path", timeout=5).status_code == 404
    finally:
        assert exporter.stop() == 0
