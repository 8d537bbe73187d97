"""File and folder names that are valid on Windows, macOS and Linux, from any action name."""

from __future__ import annotations

import re

# Windows refuses these as a name's stem whatever the extension (CON.txt too).
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\s]+')
MAX_LENGTH = 64


def safe_name(name: str) -> str:
    """`Armature|mixamo.com|Layer0` → `Armature_mixamo.com_Layer0`: unsafe characters and spaces become `_`,
    no leading/trailing dots or underscores, reserved device names get a trailing `_`, at most MAX_LENGTH chars."""
    out = _UNSAFE.sub("_", name).strip("._ ")[:MAX_LENGTH].rstrip("._ ") or "action"
    if out.split(".")[0].upper() in _RESERVED:
        out += "_"
    return out


def unique_names(names: list[str]) -> dict[str, str]:
    """Original name → safe name, distinct even when names differ only in unsafe characters or case
    (macOS and Windows folders ignore case)."""
    out, taken = {}, set()
    for name in names:
        base = candidate = safe_name(name)
        k = 2
        while candidate.lower() in taken:
            candidate, k = f"{base}_{k}", k + 1
        taken.add(candidate.lower())
        out[name] = candidate
    return out
