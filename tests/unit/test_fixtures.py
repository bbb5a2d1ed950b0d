"""The platform fixtures under tests/unit/fixtures/ stand on their own: each
file parses, and the README beside it names the vendor page it came from (or
says it was built here), so a reader can check a fixture against its source
without anything outside the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

FIXTURES = Path(__file__).parent / "fixtures"
PLATFORMS = ("agent_activities", "bctrl", "runtools", "runtype")
REPO = Path(__file__).resolve().parents[2]


def fixture_files(platform: str) -> list[Path]:
    return sorted(p for p in (FIXTURES / platform).iterdir() if p.suffix in {".json", ".yaml"})


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_fixture_parses_and_is_described_beside_it(platform: str) -> None:
    files = fixture_files(platform)
    assert files, f"no fixtures for {platform}"
    readme = (FIXTURES / platform / "README.md").read_text()
    for path in files:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        assert isinstance(data, dict) and data, path.name
        assert f"`{path.name}`" in readme, f"{platform}/README.md does not describe {path.name}"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_readme_names_a_vendor_page(platform: str) -> None:
    readme = (FIXTURES / platform / "README.md").read_text()
    assert re.search(r'page "[^"]+"', readme), f"{platform}/README.md names no vendor page by its title"
    assert re.search(r"(https://|api\.example\.com)", readme), f"{platform}/README.md gives no address"


def test_no_test_climbs_out_of_the_repository() -> None:
    # `Path(__file__).parents[k]` of a module fewer than k folders below the root,
    # or a quoted relative path into the parent folder, reaches beside the checkout:
    # a fresh clone has nothing there.
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        depth = len(path.relative_to(REPO).parts) - 1
        for n, line in enumerate(path.read_text().splitlines(), 1):
            climbs = any(int(k) > depth for k in re.findall(r"__file__\)\.resolve\(\)\.parents\[(\d+)\]", line))
            if climbs or re.search(r"[\"']\.\./", line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == []
