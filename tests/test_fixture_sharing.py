"""A session fixture is set up once a session only while it has one definition. Importing it by name into a test
module (`from conftest import extension`) registers a second one there: the extension was installed again by each
module that did, over whatever the tests before had left running, so the batch tests passed or erred by file
order. conftest's fixtures are seen by every test without an import."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def session_fixtures(tree: ast.Module) -> set[str]:
    found = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if isinstance(deco, ast.Call) and ast.unparse(deco.func) == "pytest.fixture":
                scopes = [k.value for k in deco.keywords if k.arg == "scope"]
                if scopes and isinstance(scopes[0], ast.Constant) and scopes[0].value in ("session", "package"):
                    found.add(node.name)
    return found


def test_no_session_fixture_is_imported_by_name():
    trees = {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in TESTS.glob("*.py")}
    fixtures = {module: session_fixtures(tree) for module, tree in trees.items()}
    assert "installed_extension" in fixtures["conftest"] and "tiny_server" in fixtures["conftest"]
    imported = [
        f"tests/{module}.py imports {alias.name} from {node.module}"
        for module, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in fixtures
        for alias in node.names
        if alias.name in fixtures[node.module]
    ]
    assert not imported, imported
