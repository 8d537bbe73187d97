"""The docs cannot drift from the code: the README's API table against the app's OpenAPI schema, and no doc or
code pointing outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from server.api import Settings, create_app
from server.loaders import ModelConfig

ROOT = Path(__file__).resolve().parent.parent
ROUTE_ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)` \|", re.M)
DOCS_ROUTES = {"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)  # the README writes {id}, the code {job_id}


def test_readme_api_table_lists_every_route_and_no_other(tmp_path):
    app = create_app(Settings(models=ModelConfig.load(), data_dir=tmp_path))
    served = {
        (method.upper(), _shape(path))
        for path, item in app.openapi()["paths"].items()
        for method in item
        if path not in DOCS_ROUTES
    }
    documented = {(method, _shape(path)) for method, path in ROUTE_ROW.findall((ROOT / "README.md").read_text())}
    assert served, "the schema lists no routes"
    assert served - documented == set(), f"routes the README's API table leaves out: {served - documented}"
    assert documented - served == set(), f"routes the README documents that do not exist: {documented - served}"


def test_docs_and_code_link_inside_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.toml"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    outside = [
        name
        for name in tracked
        if (ROOT / name).exists()
        and re.search(r"\.\./shared|shared/(CONVENTIONS|DESIGN|STYLE)\.md", (ROOT / name).read_text())
    ]
    assert outside == [], outside
    assert (ROOT / "docs" / "CONVENTIONS.md").is_file()
