"""The docs match the code: the README's metric table and the declared
metrics; every registered platform documented where a user looks for it."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.convert.metrics import METRICS
from exporter.sources.registry import PLATFORMS

ROOT = Path(__file__).resolve().parents[2]


def readme_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\| `(agent_[a-z_]+)` \| (counter|gauge|histogram) \| ([a-z_, ]*?) ?\|", line)
        if m:
            labels = tuple(x.strip() for x in m.group(3).split(",") if x.strip())
            rows[m.group(1)] = (m.group(2), labels)
    return rows


def test_readme_metric_table_matches_the_declared_metrics() -> None:
    declared = {spec.name: (spec.kind.value, spec.labels) for spec in METRICS}
    assert readme_metrics() == declared


def test_every_registered_platform_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    read_table = set(re.findall(r"^\| `([a-z_]+)` \|", readme.split("### How each platform is read")[1], re.MULTILINE))
    sections = set(re.findall(r"^## ([a-z_]+):", (ROOT / "docs" / "platforms.md").read_text(), re.MULTILINE))
    demo = (ROOT / "config" / "demo.yaml").read_text()
    for name in PLATFORMS:
        assert name in read_table, f"README's 'How each platform is read' has no row for {name}"
        assert name in sections, f"docs/platforms.md has no section for {name}"
        assert re.search(rf"^\s+type: {name}$", demo, re.MULTILINE), f"config/demo.yaml has no {name} source"


def test_relative_links_in_the_docs_lead_to_files_of_the_repository() -> None:
    # The README, CONTRIBUTING.md and docs/ link to each other and to code; a
    # link to a file that is not in the checkout is a dead end for a reader.
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]
    dead = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor on the same page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.is_file() or ROOT not in path.parents:
                dead.append(f"{page.relative_to(ROOT)}: {target}")
    assert dead == []
    readme = (ROOT / "README.md").read_text()
    assert "](docs/platforms.md)" in readme and "](CONTRIBUTING.md)" in readme
