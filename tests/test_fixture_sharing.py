"""A session fixture is set up once a session only while it has one definition. Importing it by name into a test
module (`from conftest import extension`) registers a second one there: the extension was installed again by each
module that did, over whatever the tests before had left running, so the batch tests passed or erred by file
order. conftest's fixtures are seen by every test without an import, so none of them is imported by name."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def fixtures(tree: ast.Module, session_only: bool) -> set[str]:
    found = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            if ast.unparse(call.func if call else deco) != "pytest.fixture":
                continue
            scopes = [k.value.value for k in (call.keywords if call else ()) if k.arg == "scope"]
            if not session_only or scopes and scopes[0] in ("session", "package"):
                found.add(node.name)
    return found


def test_no_conftest_or_session_fixture_is_imported_by_name():
    trees = {path.stem: ast.parse(path.read_text(encoding="utf-8")) for path in TESTS.glob("*.py")}
    shared = {module: fixtures(tree, session_only=module != "conftest") for module, tree in trees.items()}
    assert {"installed_extension", "extension", "tiny_server"} <= shared["conftest"]
    imported = [
        f"tests/{module}.py imports {alias.name} from {node.module}"
        for module, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in shared
        for alias in node.names
        if alias.name in shared[node.module]
    ]
    assert not imported, imported
