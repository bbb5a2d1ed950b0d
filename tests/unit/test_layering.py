"""The one-way data flow (docs/design.md: sources -> model -> convert ->
export, state apart), checked on the imports themselves; and the packages
beside the exporter kept apart from it: the simulator imports nothing of the
exporter, the exporter nothing of the simulator but for its `simulate` and
`demo` commands, and testkit neither the tests nor the benchmarks."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "exporter"
SIMULATOR = ROOT / "simulator"
TESTKIT = ROOT / "testkit"

# module prefix -> exporter modules it may import (prefix match)
ALLOWED = {
    "exporter.sources.": (
        "exporter.model",
        "exporter.sources.base",
        "exporter.sources.http",
        "exporter.config",
        "exporter.config.",
        "exporter.sources.",
        "exporter.retry_after",
        "exporter.httpx_response",
    ),
    # The loader reaches the platform registry from inside load_config only
    # (the platforms' options import the config's validators).
    "exporter.config.": ("exporter.config", "exporter.config.", "exporter.redact", "exporter.sources.registry"),
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
    "exporter.pipeline": (
        "exporter.model",
        "exporter.convert.",
        "exporter.export.",
        "exporter.state.",
        "exporter.sources.base",
        "exporter.sources.http",
        "exporter.config",
        "exporter.progress",
        "exporter.recent",
    ),
    "exporter.server": ("exporter.server",),
    # The status page's parts: what they keep is filled by the pipeline and
    # the jobs; the page renders the status dict and reads nothing itself.
    "exporter.progress": (),
    "exporter.recent": ("exporter.model", "exporter.convert."),
    "exporter.statuspage": ("exporter.progress",),
}


def imports(path: Path) -> set[str]:
    """Every module `path` imports by absolute name (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def imports_of(path: Path, package: str) -> set[str]:
    """The modules of `package` (itself included) that `path` imports."""
    return {m for m in imports(path) if m == package or m.startswith(package + ".")}


def exporter_imports(path: Path) -> set[str]:
    return imports_of(path, "exporter")


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
    paths = sorted(SIMULATOR.rglob("*.py"))
    assert paths, SIMULATOR
    assert {str(p.relative_to(ROOT)): sorted(exporter_imports(p)) for p in paths if exporter_imports(p)} == {}


def test_only_the_command_line_imports_the_simulator() -> None:
    # The `simulate` and `demo` commands run it; nothing else in the product does.
    importers = {str(p.relative_to(ROOT)) for p in sorted(PACKAGE.rglob("*.py")) if imports_of(p, "simulator")}
    assert importers <= {"exporter/cli.py"}


def test_testkit_imports_neither_the_tests_nor_the_benchmarks() -> None:
    paths = sorted(TESTKIT.rglob("*.py"))
    assert paths, TESTKIT
    found = {
        str(p.relative_to(ROOT)): sorted(imports_of(p, "tests") | imports_of(p, "benchmarks"))
        for p in paths
        if imports_of(p, "tests") | imports_of(p, "benchmarks")
    }
    assert found == {}


def test_benchmarks_and_tests_share_through_testkit_only() -> None:
    # Neither imports the other (test_benchmarks_smoke.py runs the benchmarks
    # as programs, without importing them); what both need is in testkit/.
    benchmarks = {
        str(p.relative_to(ROOT)): sorted(imports_of(p, "tests"))
        for p in sorted((ROOT / "benchmarks").rglob("*.py"))
        if imports_of(p, "tests")
    }
    tests = {
        str(p.relative_to(ROOT)): sorted(imports_of(p, "benchmarks"))
        for p in sorted((ROOT / "tests").rglob("*.py"))
        if imports_of(p, "benchmarks")
    }
    assert (benchmarks, tests) == ({}, {})
