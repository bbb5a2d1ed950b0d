"""The one-way data flow (docs/design.md: sources -> model -> convert ->
export, state apart), checked on the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"

# module prefix -> exporter modules it may import (prefix match)
ALLOWED = {
    "exporter.sources.": (
        "exporter.model",
        "exporter.sources.base",
        "exporter.sources.http",
        "exporter.config",
        "exporter.sources.",
        "exporter.retry_after",
        "exporter.httpx_response",
    ),
    "exporter.convert.": ("exporter.model", "exporter.convert."),
    "exporter.state.": ("exporter.model", "exporter.state."),
    "exporter.export.": (
        "exporter.model",
        "exporter.convert.",
        "exporter.state.",
        "exporter.export.",
        "exporter.config",
        "exporter",
        "exporter.retry_after",
        "exporter.httpx_response",
    ),
    "exporter.server": ("exporter.server",),
    "exporter.simulator.": ("exporter.simulator.",),
}


def exporter_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "exporter" or m.startswith("exporter.")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_follow_the_data_flow() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        rule = next(
            (allowed for prefix, allowed in ALLOWED.items() if name == prefix.rstrip(".") or name.startswith(prefix)),
            None,
        )
        if rule is None:
            continue
        for imported in exporter_imports(path):
            if not any(
                imported == a.rstrip(".") or imported.startswith(a) if a.endswith(".") else imported == a for a in rule
            ):
                problems.append(f"{name} imports {imported}")
    assert problems == []


def test_simulator_shares_no_code_with_the_exporter() -> None:
    for path in (PACKAGE / "simulator").rglob("*.py"):
        assert all(m.startswith("exporter.simulator") for m in exporter_imports(path)), path
