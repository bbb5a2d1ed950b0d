"""The command line as a user runs it: exit codes and one-line messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GOOD_SOURCE = {"name": "feed", "type": "runtools", "base_url": "http://127.0.0.1:9", "api_key": "k3y-s3cret-value"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def write(tmp_path: Path, config: dict[str, object]) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"sources": [{**GOOD_SOURCE, "intervall": "5s"}]}, "sources[0].intervall"),
        ({"sources": [{**GOOD_SOURCE, "api_key": "${NOT_SET_ANYWHERE_42}"}]}, "sources[0].api_key"),
        ({"sources": [{**GOOD_SOURCE, "base_url": "ftp//nowhere"}]}, "sources[0].base_url"),
        ({"sources": [{**GOOD_SOURCE, "interval": "5 parsecs"}]}, "sources[0].interval"),
        ({"listen": "127.0.0.1:0", "tracez": {}}, "tracez"),
    ],
)
@pytest.mark.parametrize("command", ["run", "check-config", "once"])
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, change: dict[str, object], key: str, command: str) -> None:
    config = {"listen": "127.0.0.1:0", "state": {"path": str(tmp_path / "s.db")}, "sources": [GOOD_SOURCE], **change}
    result = cli(command, "-c", write(tmp_path, config))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "config.yaml" in lines[0], result.stderr
    assert "k3y-s3cret-value" not in result.stderr + result.stdout
    assert not (tmp_path / "s.db").exists()  # nothing started


def test_check_config_prints_resolved_config_without_secrets(tmp_path: Path) -> None:
    config: dict[str, object] = {
        "sources": [{**GOOD_SOURCE, "api_key": "${FEED_KEY}"}],
        "traces": {"headers": {"authorization": "Bearer tok-secret-1"}},
    }
    result = cli("check-config", "-c", write(tmp_path, config), env={"FEED_KEY": "k3y-from-env-777"})
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert printed["sources"][0]["api_key"] == "***"
    assert "k3y-from-env-777" not in result.stdout and "tok-secret-1" not in result.stdout


def test_once_exits_1_when_a_source_fails_and_never_prints_its_key(tmp_path: Path) -> None:
    # Port 9 on loopback: nothing listens, the connection is refused.
    config: dict[str, object] = {
        "listen": "127.0.0.1:0",
        "state": {"path": str(tmp_path / "s.db")},
        "sources": [{**GOOD_SOURCE, "timeout": "1s"}],
    }
    result = cli("once", "-c", write(tmp_path, config), "--log-level", "debug")
    assert result.returncode == 1
    assert "source is down" in result.stderr and "k3y-s3cret-value" not in result.stderr


def test_help_lists_every_command() -> None:
    result = cli("--help")
    for command in ("run", "once", "check-config", "simulate", "demo"):
        assert command in result.stdout
