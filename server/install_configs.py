"""The model folders an install's own settings add to its standard ones, read as the install reads them. Standard
library only (model_layouts.py uses it, and the add-on imports that).

- ComfyUI: `extra_model_paths.yaml` beside main.py (utils/extra_config.py). Each top-level section (`a111:`,
  `comfyui:`, any name) maps ComfyUI folder names (`checkpoints`, `loras`, ...) to one path or to several, one a
  line (a `|` block); `base_path` is joined in front of each (a relative base_path, or a path without one, is
  taken from the YAML's folder; `~` and `$VARS` expand); `is_default: true` puts a section's folders before the
  install's own. Only the small part of YAML those files use is read (`_yaml_sections`), so that no YAML library
  is needed: a line this reader does not understand is skipped, never an error.
- AUTOMATIC1111/Forge: `COMMANDLINE_ARGS` of `webui-user.bat` / `webui-user.sh`, split as A1111 splits it
  (modules/paths_internal.py: shlex). `--ckpt-dir` comes before models/Stable-diffusion (modelloader.load_models
  lists it first), `--vae-dir` and `--controlnet-dir` after their defaults; `--lora-dir` (the Lora extension's
  preload.py), `--embeddings-dir` and `--data-dir` replace the defaults they name, as sd-webui-animatediff's
  `animatediff_model_path` setting (config.json) replaces its model folder. Forge's `--forge-ref-a1111-home` adds
  another install's standard folders after this one's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

COMFYUI_YAML = "extra_model_paths.yaml"
COMFYUI_FOLDER_KINDS = {  # ComfyUI folder names (folder_paths.py, AnimateDiff-Evolved, IPAdapter_plus) -> kind
    "checkpoints": "base",
    "diffusers": "base",
    "loras": "lora",
    "vae": "vae",
    "embeddings": "embedding",
    "controlnet": "controlnet",
    "animatediff_models": "motion_module",
    "animatediff_motion_lora": "motion_lora",
    "clip_vision": "image_encoder",
    "ipadapter": "ip_adapter",
}
A1111_SCRIPTS = ("webui-user.bat", "webui-user.sh")
# argument -> (kind, where it goes: "first" before the default folder, "after" it, "replace" instead of it)
A1111_ARGS = {
    "--ckpt-dir": ("base", "first"),
    "--vae-dir": ("vae", "after"),
    "--controlnet-dir": ("controlnet", "after"),
    "--lora-dir": ("lora", "replace"),
    "--embeddings-dir": ("embedding", "replace"),
    # not an argument: sd-webui-animatediff's "Path to save AnimateDiff motion modules" setting (config.json)
    "animatediff_model_path": ("motion_module", "replace"),
}
_TRUE = {"true", "yes", "on"}


def _scalar(text: str) -> str:
    """A YAML scalar on one line: quotes removed ('' in single quotes is one quote; in double quotes a backslash
    keeps the character after it), a trailing comment dropped."""
    text = text.strip()
    if text[:1] == "'":
        m = re.match(r"'((?:[^']|'')*)'?", text)
        return m[1].replace("''", "'")
    if text[:1] == '"':
        m = re.match(r'"((?:[^"\\]|\\.)*)"?', text)
        return re.sub(r"\\(.)", r"\1", m[1])
    return re.split(r"\s#", text, maxsplit=1)[0].strip()


def _yaml_sections(text: str) -> dict[str, dict[str, str]]:
    """{section: {key: value}} of an extra_model_paths.yaml: top-level `name:` lines, indented `key: value` lines,
    and `key: |` (or `>`, `|-`) blocks whose more-indented lines are kept one a line."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    block: tuple[str, int] | None = None  # (key, indent of its line) while a block's lines are read
    for raw in text.splitlines():
        line = raw.rstrip()
        indent = len(line) - len(line.lstrip(" "))
        if block and current is not None:
            if not line.strip() or indent > block[1]:
                if line.strip():
                    current[block[0]] += line.strip() + "\n"
                continue
            block = None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*([^:#]+?)\s*:(?:\s+(.*))?", line)
        if not m:
            continue
        key, value = m[1].strip().strip("'\""), (m[2] or "").strip()
        if indent == 0:
            current = sections.setdefault(key, {}) if not value or value.startswith("#") else None
        elif current is not None:
            if value[:1] in ("|", ">"):
                current[key], block = "", (key, indent)
            elif value and not value.startswith("#"):
                current[key] = _scalar(value)
    return sections


def _expand(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


def comfyui_folders(install: Path) -> list[tuple[str, str, bool]]:
    """(folder, kind, before the install's own) of each folder extra_model_paths.yaml names, in the file's order;
    [] without the file or when it cannot be read."""
    path = install / COMFYUI_YAML
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    for conf in _yaml_sections(text).values():
        base = conf.pop("base_path", None)
        first = conf.pop("is_default", "").lower() in _TRUE
        if base is not None:
            base = str(install / _expand(base))  # an absolute base_path stays as it is
        for name, value in conf.items():
            kind = COMFYUI_FOLDER_KINDS.get(name)
            for line in value.split("\n") if kind else ():
                if line.strip():
                    folder = os.path.join(base, _expand(line.strip())) if base else str(install / _expand(line))
                    out.append((os.path.normpath(folder), kind, first))
    return out


def _bat_value(text: str) -> str | None:
    """COMMANDLINE_ARGS of a webui-user.bat: the last `set` of it, `%NAME%` filled in from the file's earlier
    `set NAME=...` lines (then the environment)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        m = re.fullmatch(r'\s*set\s+(")?([^=\s"]+)=(.*)', line.rstrip(), flags=re.IGNORECASE)
        if m:
            value = m[3][:-1] if m[1] and m[3].endswith('"') else m[3]  # set "NAME=value"
            values[m[2].upper()] = re.sub(
                r"%([^%]+)%", lambda v: values.get(v[1].upper(), os.environ.get(v[1], v[0])), value
            )
    return values.get("COMMANDLINE_ARGS")


def _sh_value(text: str) -> str | None:
    """COMMANDLINE_ARGS of a webui-user.sh: the last uncommented assignment, as the shell would set it."""
    value = None
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(?:export\s+)?COMMANDLINE_ARGS=(.*)", line)
        if m:
            try:
                words = shlex.split(m[1], comments=True)
            except ValueError:
                continue
            value = os.path.expandvars(" ".join(words)) if len(words) <= 1 else None
    return value


def a1111_arguments(install: Path) -> list[str]:
    """The words of COMMANDLINE_ARGS in webui-user.bat or webui-user.sh (A1111 ships both; the one this system
    runs is read first), [] when neither sets it."""
    scripts = list(zip(A1111_SCRIPTS, (_bat_value, _sh_value)))
    for script, read in scripts if os.name == "nt" else scripts[::-1]:
        try:
            value = read((install / script).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        if value:
            try:
                return shlex.split(value)
            except ValueError:  # an unclosed quote: A1111 itself would not start
                return []
    return []


def _setting(path: Path, key: str) -> str | None:
    """A string setting of A1111's config.json (the settings page), None when unset, empty or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value.strip() else None


def a1111_folders(install: Path, standard) -> list[tuple[str, str]]:
    """(folder, kind) of an A1111/Forge install in the order A1111 lists them: `standard` ((sub-path, kind) pairs
    under the install) with what COMMANDLINE_ARGS adds, moves or replaces."""
    args, options = a1111_arguments(install), {}
    for i, word in enumerate(args):
        name, _, inline = word.partition("=")
        if name in (*A1111_ARGS, "--data-dir", "--forge-ref-a1111-home"):
            value = inline or (args[i + 1] if i + 1 < len(args) else "")
            if value:
                options[name] = str(install / _expand(value))
    data = Path(options.get("--data-dir", install))  # A1111's models, embeddings, extensions and settings live there
    motion = _setting(data / "config.json", "animatediff_model_path")
    if motion:
        options["animatediff_model_path"] = str(install / _expand(motion))
    folders = [(str(data / sub), kind) for sub, kind in standard]
    for arg, (kind, where) in A1111_ARGS.items():
        if arg in options:
            at = next((i for i, (_, k) in enumerate(folders) if k == kind), len(folders))
            if where == "replace" and at < len(folders):
                folders[at] = (options[arg], kind)
            else:
                folders.insert(at + (where == "after"), (options[arg], kind))
    if "--forge-ref-a1111-home" in options:
        ref = Path(options["--forge-ref-a1111-home"])
        folders += [(str(ref / sub), kind) for sub, kind in standard]
    return [(os.path.normpath(f), k) for f, k in folders]
