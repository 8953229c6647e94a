"""Imports point one way: verification -> solvers -> analytic (DESIGN.md). Parsed, not guessed."""

import ast
from pathlib import Path

import pytest

import scorebench

PKG = Path(scorebench.__file__).resolve().parent
# For each subpackage, the scorebench subpackages it must never import.
FORBIDDEN = {
    "analytic": {"solvers", "verification", "bench", "testing", "cli"},
    "solvers": {"verification", "bench", "testing", "cli"},
    "verification": {"bench", "cli"},
}


def _imported_subpackages(path: Path, subpackage: str):
    tree = ast.parse(path.read_text(), filename=str(path))
    depth = len(path.relative_to(PKG).parts) - 1  # directories below scorebench/
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:
                # resolve a relative import against the module's package
                base = list(path.relative_to(PKG).parts[:-1])
                up = node.level - 1
                if up > depth:
                    continue
                base = base[: len(base) - up] if up else base
                names = [".".join(["scorebench", *base, *(node.module or "").split(".")]).rstrip(".")]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "scorebench" and len(parts) > 1:
                yield parts[1]


@pytest.mark.parametrize("subpackage", sorted(FORBIDDEN))
def test_imports_point_one_way(subpackage):
    offenders = []
    files = sorted((PKG / subpackage).rglob("*.py"))
    assert files, f"no modules found under {subpackage}"
    for path in files:
        bad = set(_imported_subpackages(path, subpackage)) & FORBIDDEN[subpackage]
        if bad:
            offenders.append(f"{path.relative_to(PKG)} imports {sorted(bad)}")
    assert not offenders, offenders
