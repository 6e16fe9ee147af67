"""The package's shape: no module imports a private name (``_x``) of another module.

The layer direction itself (llama > workbench > stats > search > errors/files) is the import-linter contract in
``pyproject.toml``, checked by ``make test``.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lpzero_core"


def private_imports(source: str) -> list[str]:
    """``module.name`` for every ``from lpzero_core… import _name`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lpzero_core"):
            found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
    return found


def test_the_checker_sees_a_private_import():
    found = private_imports("from lpzero_core.search.proxy import _atomic, Proxy")
    assert found == ["lpzero_core.search.proxy._atomic"]
    assert private_imports("from lpzero_core.search.proxy import Proxy") == []


def test_no_module_imports_a_private_name_of_another():
    offenders = {str(path.relative_to(PACKAGE)): found for path in PACKAGE.rglob("*.py")
                 if (found := private_imports(path.read_text()))}
    assert offenders == {}
