"""The server's model names for the panel's pickers, remembered on disk for when the server is offline.

`refresh(client, cache_file)` asks `GET /models` and, per motion module, `POST /plan` for its version and frame
limit (the panel says what a module supports before anything runs). The answer is kept in memory and written to
`cache_file`; `load(cache_file)` reads it back in a new Blender session. The pickers offer SD1.5 models and those
whose family the server could not tell: SDXL, Flux, ... files (their `family` in GET /models) are left out. A picker
offers them in the order artists expect (case-insensitive, "lora2" before "lora10"), sorted once per catalogue: its
search callback runs on every keystroke and only filters (`search`). No bpy here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .client import Client, ServerError

KINDS = ("base", "motion_module", "controlnet", "sparsectrl", "lora", "ip_adapter", "vae")

_catalog: dict = {}
_offers: dict[str, list[tuple[str, str]]] = {}  # kind -> (name, name.casefold()) in picker order, per catalogue


def natural_key(name: str) -> tuple:
    """Sort key: case-insensitive, digit runs as numbers ("lora2" < "lora10"); the name itself breaks ties."""
    parts = re.split(r"(\d+)", name.casefold())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def refresh(client: Client, cache_file: Path | None = None) -> dict:
    """The server's models: {kind: [name, ...], "family": {kind: {name: family}}, "motion_info": {name: {"version",
    "max_frames"}}}; cached. Families are kept for the names whose family is known."""
    answer = client.models()
    catalog = {kind: [item["name"] for item in answer.get(kind, [])] for kind in KINDS}
    catalog["family"] = {
        kind: {item["name"]: item["family"] for item in answer.get(kind, []) if item.get("family")} for kind in KINDS
    }
    base = (_usable(catalog, "base") or [""])[0]
    catalog["motion_info"] = {}
    for name in _usable(catalog, "motion_module"):
        try:
            plan = client.plan(
                {"prompt": "-", "base": base, "motion_module": name, "frames": 2, "width": 64, "height": 64, "steps": 1}
            )
        except ServerError:
            continue  # a module the server cannot read: the name stays pickable, its limits unknown
        info = plan.get("motion_module", {})
        catalog["motion_info"][name] = {"version": info.get("version", "unknown"), "max_frames": info.get("max_frames")}
    _catalog.clear()
    _catalog.update(catalog)
    _offers.clear()
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(catalog, indent=1))
    return catalog


def load(cache_file: Path) -> dict:
    """The catalogue remembered from the last refresh (empty when there was none or the file is unreadable)."""
    if not _catalog and cache_file.is_file():
        try:
            _catalog.update(json.loads(cache_file.read_text()))
        except (OSError, ValueError):
            pass
        _offers.clear()
    return _catalog


def names(kind: str) -> list[str]:
    """The names of `kind` a picker offers: SD1.5 models and those of unknown family, in the server's order (its
    first is the default a job takes)."""
    return _usable(_catalog, kind)


def search(kind: str, text: str) -> list[str]:
    """The names of `kind` that contain `text` (case-insensitive), in picker order: a picker's search callback."""
    text = text.casefold()
    return [name for name, folded in _offer(kind) if text in folded]


def _offer(kind: str) -> list[tuple[str, str]]:
    offer = _offers.get(kind)
    if offer is None:
        offer = _offers[kind] = [(n, n.casefold()) for n in sorted(_usable(_catalog, kind), key=natural_key)]
    return offer


def _usable(catalog: dict, kind: str) -> list[str]:
    families = catalog.get("family", {}).get(kind, {})
    return [name for name in catalog.get(kind, []) if families.get(name, "sd15") == "sd15"]


def motion_info(name: str) -> dict | None:
    """{"version": "v2"|..., "max_frames": n} of a motion module the server listed, None when unknown."""
    return _catalog.get("motion_info", {}).get(name)


def clear():
    _catalog.clear()
    _offers.clear()
