"""What the package ships runs without the repository's tests/ folder: an installed mtc-keras
has mtc_keras, tfds_builders, experiments and benchmarks (pyproject's package list), not tests,
so none of them may import tests (what they share with the tests is mtc_keras.testing)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO_ROOT

SHIPPED = ("mtc_keras", "tfds_builders", "experiments", "benchmarks")


def _imported_modules(path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.append(node.module)
    return modules


def test_tests_are_not_shipped_and_the_rest_is():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {pattern.rstrip("*") for pattern in include} == set(SHIPPED)


@pytest.mark.parametrize("package", SHIPPED)
def test_shipped_code_does_not_import_the_tests(package):
    # A builder's *_test.py files are tests themselves (pytest collects them; `tfds build` never
    # imports them).
    files = [p for p in sorted((REPO_ROOT / package).rglob("*.py")) if not p.name.endswith("_test.py")]
    assert files
    offenders = {str(p.relative_to(REPO_ROOT)): m for p in files for m in _imported_modules(p)
                 if m == "tests" or m.startswith("tests.")}
    assert not offenders, f"shipped modules import the tests (share through mtc_keras.testing): {offenders}"
