"""The models found in model roots (A1111/Forge or ComfyUI installs, plain folders; server/model_layouts.py) added
to the names of the model config.

Precedence, the same at start-up and on every rescan: a `[kind.name]` entry of the TOML keeps its name; a
well-known public file found in a root takes over its default name when that name's entry is a hub source (so
nothing is downloaded twice); every other file is named by its stem; between roots, and between files of one
root, the first one found wins (roots in the order given: `roots = [...]` of the TOML, then `--model-root`).

An IP-Adapter found in a root gets the image encoder `vit_h` (the default, or a ViT-H file found in a root), else
the config's only image encoder (a `vit-G` one: an encoder with `bigG` in its name); one that can get none is left
out with a warning, never a start-up failure.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from ..model_layouts import added_folders, scan

log = logging.getLogger("marionette")
DEFAULT_ENCODER = "vit_h"


def add_found(entries: dict, roots: list[str], file_configs: dict[str, str], make_entry) -> None:
    """Add the models of `roots` to `entries` ({kind: {name: ModelEntry}}) in place. `file_configs`: kind -> the
    config folder for single files found (none: the configs shipped for the public models)."""
    taken: set[tuple[str, str]] = set()  # default names a root's file already took over
    found_adapters = []
    for root in roots:
        for item in scan(root):
            if item.kind not in entries:
                continue
            current = entries[item.kind].get(item.name)
            if item.well_known:
                if (item.kind, item.name) in taken:
                    continue  # the same public file in a later root
                if current is None or not current.local:
                    taken.add((item.kind, item.name))
                    entries[item.kind][item.name] = (
                        dataclasses.replace(current, source=item.path, config=None, weight_name=None)
                        if current is not None
                        else make_entry(item.kind, item.name, item.path, None)
                    )
                    if current is None and item.kind == "ip_adapter":
                        found_adapters.append(item.name)
                    continue
                name = os.path.splitext(os.path.basename(item.path))[0]  # its default name is the TOML's own model
            else:
                name = item.name
            if name in entries[item.kind]:
                continue
            config = file_configs.get(item.kind) if os.path.isfile(item.path) else None
            entries[item.kind][name] = make_entry(item.kind, name, item.path, config)
            if item.kind == "ip_adapter":
                found_adapters.append(name)
    _link_found_adapters(entries, found_adapters)


def warn_missing_folders(roots: list[str]) -> None:
    """Log the folders an install's settings name that are not there (as ComfyUI and A1111 go on without them)."""
    for root in roots:
        where, added = added_folders(root)
        for folder in added:
            if not os.path.isdir(folder):
                log.warning("model root %s: %s names %s, which is not a folder", root, where, folder)


def _link_found_adapters(entries: dict, names: list[str]) -> None:
    encoders = sorted(entries["image_encoder"])
    vit_h = DEFAULT_ENCODER if DEFAULT_ENCODER in encoders else encoders[0] if len(encoders) == 1 else None
    big_g = next((e for e in encoders if "bigg" in e.lower()), None)
    for name in names:
        # ip-adapter_sd15_vit-G was trained on OpenCLIP ViT-bigG/14 (ComfyUI: CLIP-ViT-bigG-14-laion2B-39B-b160k)
        encoder = big_g if "vit-g" in os.path.basename(entries["ip_adapter"][name].source).lower() else vit_h
        if encoder is None:
            entry = entries["ip_adapter"].pop(name)
            log.warning(
                "IP-Adapter %s left out: no image encoder named %s (configured: %s)",
                entry.source,
                DEFAULT_ENCODER,
                ", ".join(encoders) or "none",
            )
        else:
            entries["ip_adapter"][name] = dataclasses.replace(entries["ip_adapter"][name], image_encoder=encoder)
