"""The deployment files for several replicas sharing PostgreSQL (issue #16):
deploy/kubernetes/ and docker-compose.yml's `replicas` profile.

Neither Kubernetes nor Docker runs here, so the files are checked offline:
the manifests against the pinned Kubernetes version's schemas
(kubernetes-validate, strict: an unknown field is an error), the configs
they carry against the exporter's own validation, and the wiring between
the files (ports, probes, Secret keys, image paths, scrape targets), so
that none of them can drift from the others or from the image.

The configs are validated as shipped (`state.url` from the environment,
`shards`); tests/integration/test_deploy_probes.py runs the ConfigMap's
config against a real PostgreSQL.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from exporter.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "docker-compose.yml"
# The oldest Kubernetes still commonly run; the schemas ship with the package (no network).
KUBERNETES_VERSION = "1.30.0"
# ${NAME} without a default: what the environment must supply.
REQUIRED_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Doc = dict[str, Any]


# -- helpers ----------------------------------------------------------------------------


def manifests() -> dict[str, Doc]:
    """kind -> the manifest, for every file kustomization.yaml lists."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    docs = [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((KUBERNETES / name).read_text())]
    by_kind = {str(doc["kind"]): doc for doc in docs}
    assert len(by_kind) == len(docs), "one manifest per kind"
    return by_kind


def container() -> Doc:
    (only,) = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def dockerfile(instruction: str) -> str:
    """The argument of the Dockerfile's last `instruction` line."""
    lines = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith(f"{instruction} ")]
    return lines[-1].split(" ", 1)[1].strip()


def load(text: str, tmp_path: Path, env: dict[str, str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    try:
        load_config(path, env)
    except ConfigError as err:
        pytest.fail(f"the config does not validate:\n{err}", pytrace=False)


def k8s_config_text() -> str:
    return str(manifests()["ConfigMap"]["data"]["config.yaml"])


def k8s_env() -> dict[str, str]:
    """The container's environment: the Secret's values where it refers to them."""
    secret = manifests()["Secret"]["stringData"]
    env = {}
    for entry in container()["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        env[entry["name"]] = secret[ref["key"]] if ref else entry["value"]
    return env


def compose() -> Doc:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def replicas() -> dict[str, Doc]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if "replicas" in service.get("profiles", []) and name.startswith("exporter")
    }


def compose_config_text(name: str) -> str:
    # `$${` is Compose's escape for a literal `${` in the file.
    return str(compose()["configs"][name]["content"]).replace("$${", "${")


# -- Kubernetes -----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_no_namespace() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert "namespace" not in kustomization
    for doc in manifests().values():
        assert "namespace" not in doc["metadata"], doc["kind"]
    assert set(manifests()) == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"}
    # The image kustomize replaces is the one the Deployment names.
    assert [image["name"] for image in kustomization["images"]] == [container()["image"]]


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"])
def test_manifest_is_valid_for_the_pinned_kubernetes_version(kind: str) -> None:
    try:
        kubernetes_validate.validate(manifests()[kind], KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        pytest.fail(f"{kind}: {err.message}", pytrace=False)


def test_the_validation_rejects_a_misspelt_field() -> None:
    """Strict validation is what catches typos: the check above can fail."""
    deployment = copy.deepcopy(manifests()["Deployment"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_deployment_runs_three_replicas_behind_a_budget_and_a_service() -> None:
    kinds = manifests()
    spec = kinds["Deployment"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    budget = kinds["PodDisruptionBudget"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    # At most one replica away at a time, and never all of them.
    assert budget.get("maxUnavailable") == 1 or budget.get("minAvailable") == spec["replicas"] - 1
    service = kinds["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    names = {m["metadata"]["name"] for m in kinds.values()}
    assert names == {"agent-activity-exporter"}


def test_ports_probes_and_scrape_annotations_are_the_exporters() -> None:
    kinds = manifests()
    (port,) = container()["ports"]
    listen = yaml.safe_load(k8s_config_text())["listen"]
    assert port == {"name": "metrics", "containerPort": int(listen.rsplit(":", 1)[1]), "protocol": "TCP"}
    assert listen.startswith("0.0.0.0:"), "probes and Prometheus reach the pod on its own address"
    assert port["containerPort"] == int(dockerfile("EXPOSE"))
    (service_port,) = kinds["Service"]["spec"]["ports"]
    assert service_port["name"] == "metrics" and service_port["port"] == 9464
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    # What tests/integration/test_deploy_probes.py asks the running exporter.
    assert container()["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container()["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port["containerPort"]),
        "prometheus.io/path": "/metrics",
    }
    # Scraped once: annotating the Service too would have each pod scraped by two jobs.
    assert not any(k.startswith("prometheus.io/") for k in kinds["Service"]["metadata"].get("annotations", {}))


def test_container_runs_the_images_command_as_its_user_on_a_read_only_root() -> None:
    spec = manifests()["Deployment"]["spec"]["template"]["spec"]
    # The image's own command, with the config where the ConfigMap is mounted.
    assert container()["args"] == json.loads(dockerfile("CMD"))
    config_path = Path(container()["args"][container()["args"].index("-c") + 1])
    mounts = {m["name"]: m for m in container()["volumeMounts"]}
    (config_volume,) = [v for v in spec["volumes"] if "configMap" in v]
    assert config_volume["configMap"]["name"] == manifests()["ConfigMap"]["metadata"]["name"]
    assert config_volume["configMap"]["items"] == [{"key": "config.yaml", "path": config_path.name}]
    assert mounts[config_volume["name"]]["mountPath"] == str(config_path.parent)
    assert mounts[config_volume["name"]]["readOnly"] is True

    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid is not None
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == int(uid.group(1))
    assert dockerfile("USER") == f"{security['runAsUser']}:{security['runAsGroup']}"
    own = container()["securityContext"]
    assert own["readOnlyRootFilesystem"] is True and own["allowPrivilegeEscalation"] is False
    assert own["capabilities"] == {"drop": ["ALL"]}
    # With a read-only root, the working directory (the image's VOLUME) must be writable.
    writable = {m["mountPath"] for m in container()["volumeMounts"] if not m.get("readOnly")}
    assert dockerfile("WORKDIR") in writable
    resources = container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def test_secret_keys_are_exactly_what_the_config_references() -> None:
    secret = manifests()["Secret"]
    referenced = set(REQUIRED_VAR.findall(k8s_config_text()))
    from_secret = {
        entry["name"]: entry["valueFrom"]["secretKeyRef"]
        for entry in container()["env"]
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    assert "EXPORTER_STATE_URL" in referenced
    assert set(secret["stringData"]) == referenced == set(from_secret)
    for name, ref in from_secret.items():
        assert ref == {"name": secret["metadata"]["name"], "key": name}
    # Placeholders, visibly: nothing real is committed.
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())
    assert "data" not in secret
    # No secret in the ConfigMap itself: every secret key of the config is a ${VARIABLE}.
    config = yaml.safe_load(k8s_config_text())
    for source in config["sources"]:
        for key in ("api_key", "token"):
            assert REQUIRED_VAR.fullmatch(str(source.get(key, "${X}"))), (source["name"], key)


def test_configmap_config_validates_as_shipped(tmp_path: Path) -> None:
    assert any(s.get("shards") for s in yaml.safe_load(k8s_config_text())["sources"]), "the example shards a source"
    load(k8s_config_text(), tmp_path, k8s_env())


# -- docker-compose.yml, profile "replicas" --------------------------------------------------


def test_replicas_profile_adds_postgres_two_replicas_and_their_prometheus() -> None:
    services = compose()["services"]
    profiled = {name for name, s in services.items() if s.get("profiles")}
    assert profiled == {"postgres", "exporter-1", "exporter-2", "prometheus-replicas"}
    assert all(services[name]["profiles"] == ["replicas"] for name in profiled)
    # The default stack (`docker compose up`) is unchanged.
    assert set(services) - profiled == {"simulator", "exporter", "prometheus", "grafana", "jaeger"}

    postgres = services["postgres"]["environment"]
    dsn = f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}"
    host_ports = set()
    for name, replica in replicas().items():
        assert replica["environment"] == {"EXPORTER_STATE_URL": dsn}, name
        assert replica["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
        assert replica["configs"] == [
            {"source": "exporter-replicas-config", "target": "/etc/agent-activity-exporter/config.yaml"}
        ]
        assert (replica["build"], replica["image"]) == (services["exporter"]["build"], services["exporter"]["image"])
        (published,) = replica["ports"]
        host_ports.add(published.split(":")[0])
    assert len(replicas()) == 2 and len(host_ports) == 2


def test_replicas_config_reads_the_same_sources_as_the_single_exporter() -> None:
    single = yaml.safe_load(compose_config_text("exporter-config"))
    several = yaml.safe_load(compose_config_text("exporter-replicas-config"))
    assert several["state"] == {"url": "${EXPORTER_STATE_URL}"}
    assert set(REQUIRED_VAR.findall(compose_config_text("exporter-replicas-config"))) == {"EXPORTER_STATE_URL"}
    unsharded = [{k: v for k, v in source.items() if k != "shards"} for source in several["sources"]]
    assert unsharded == single["sources"]
    assert any(s.get("shards") for s in several["sources"]), "the profile shows shards"


def test_replicas_config_validates_as_shipped(tmp_path: Path) -> None:
    load(compose_config_text("exporter-replicas-config"), tmp_path, replicas()["exporter-1"]["environment"])


def test_prometheus_of_the_profile_scrapes_every_replica_like_the_shipped_config() -> None:
    service = compose()["services"]["prometheus-replicas"]
    assert "./config/prometheus-replicas.yml:/etc/prometheus/prometheus.yml:ro" in service["volumes"]
    assert "./config/alerts.yml:/etc/prometheus/alerts.yml:ro" in service["volumes"]
    several = yaml.safe_load((ROOT / "config" / "prometheus-replicas.yml").read_text())
    single = yaml.safe_load((ROOT / "config" / "prometheus.yml").read_text())
    (job,) = several["scrape_configs"]
    (single_job,) = single["scrape_configs"]
    port = yaml.safe_load(compose_config_text("exporter-replicas-config"))["listen"].rsplit(":", 1)[1]
    (static,) = job["static_configs"]
    assert sorted(static["targets"]) == sorted(f"{name}:{port}" for name in replicas())
    # Same job name (AgentExporterDown matches it), same relabelling, same rules.
    assert {k: v for k, v in job.items() if k != "static_configs"} == {
        k: v for k, v in single_job.items() if k != "static_configs"
    }
    assert several["rule_files"] == single["rule_files"]
    # Grafana offers it as a datasource, by its service name and port inside the network.
    datasources = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/datasources.yaml").read_text())
    urls = {d["uid"]: d["url"] for d in datasources["datasources"]}
    assert urls["prometheus-replicas"] == "http://prometheus-replicas:9090"
    assert service["ports"] == ["9091:9090"]
