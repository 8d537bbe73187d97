"""The server's 422 in the artist's words: for a model name it lacks, which choice names it, where that choice is,
and what to pick instead; for any other problem, the panel's label of its field before the server's message
("Checkpoint: pony_v6 is an SDXL checkpoint; ..."). Standard library only.

The server answers unknown names with 422 items that carry the spec field, the model `kind`, the `name` and the
configured names (`known`); every item names its field (backend/field_labels.py turns it into the panel's label).
"""

from __future__ import annotations

import re

from .client import ServerError
from .field_labels import label
from .protocol import CAMERA_DIRECTIONS

CONTROLNET_LABELS = {"depth": "Depth", "normal": "Normal", "openpose": "Pose"}

# spec field (without its index) -> (what the artist chose, the panel where it is chosen, the batch option that
# sets it). {name}: the model name; {n}: the 1-based list position; {control}: the ControlNet's guide.
CHOICES = {
    "base": ("The checkpoint {name!r}", "Prompt & Models", "--base"),
    "motion_module": ("The motion module {name!r}", "Prompt & Models", "--motion-module"),
    "controlnets": ("The {control} ControlNet {name!r}", "Guides", None),
    "loras": ("The image LoRA {name!r}", "Prompt & Models", None),
    "motion_loras": ("The camera LoRA {name!r}", "Camera Motion", None),
    "sparsectrl": ("The SparseCtrl model {name!r}", "Keyframes", None),
    "cameractrl": ("Exact camera's CameraCtrl model {name!r}", "Camera Motion", None),
    "references": ("The IP-Adapter {name!r} of image reference {n}", "Image References", "--reference-model"),
    "vae": ("The VAE {name!r}", "Prompt & Models", "--vae"),
}
_FIELD = re.compile(r"(\w+)(?:\[(\d+)\])?")


def is_unknown_model(item) -> bool:
    return isinstance(item, dict) and {"field", "kind", "name", "known"} <= item.keys()


def unknown_model_sentence(item: dict, spec: dict, batch: bool = False) -> str:
    """One sentence for one unknown-model item of the server's 422, for the panel (or, with `batch`, for the
    batch command, naming its option where one sets the choice)."""
    name, known, kind = item["name"], item["known"], item["kind"]
    pick = f"Pick one of: {', '.join(known)}." if known else f"The server has no {kind.replace('_', ' ')} configured."
    root, index = _FIELD.match(item["field"]).groups()
    if root == "camera_motion":
        what = CAMERA_DIRECTIONS.get(name, (None, None, "the camera's motion"))[2]
        return (
            f"Camera motion From camera needs the camera LoRA {name!r} ({what}), which the server lacks: set Camera "
            f"motion to Manual, or add that LoRA to the server's model config."
        )
    if root not in CHOICES:
        return f"The {kind.replace('_', ' ')} {name!r} ({item['field']}) is not on the server. {pick}"
    what, panel, option = CHOICES[root]
    n = int(index) + 1 if index is not None else 0
    control = _controlnet_kind(spec, index) if root == "controlnets" else ""
    what = what.format(name=name, n=n, control=CONTROLNET_LABELS.get(control, control))
    where = (option or f"the scene's {panel} panel") if batch else panel
    if root == "controlnets" and name == control:
        where += ", the one an empty Model means"
    if root == "motion_loras":
        return f"{what} ({where}) is not on the server: set its weight to 0." + (
            f" It has: {', '.join(known)}." if known else ""
        )
    return f"{what} ({where}) is not on the server. {pick}"


def _controlnet_kind(spec: dict, index) -> str:
    controls = spec.get("controlnets") or []
    i = int(index) if index is not None else -1
    return controls[i].get("kind", "") if 0 <= i < len(controls) and isinstance(controls[i], dict) else ""


def artist_message(error: ServerError, spec: dict, batch: bool = False) -> str:
    """The error as the artist should read it, a line per problem of a 422 in the server's order: a sentence per
    model name the server lacks, "label: message" for the rest (with `batch`, one line: the batch's table row).
    Any other error: its own text."""
    detail = error.detail
    if error.status != 422 or not isinstance(detail, list) or not detail:
        return str(error)
    lines = [_line(d, spec, batch) for d in detail if isinstance(d, dict)]
    return " ".join(line if line.endswith(".") else f"{line}." for line in lines) if batch else "\n".join(lines)


def _line(item: dict, spec: dict, batch: bool) -> str:
    if is_unknown_model(item):
        return unknown_model_sentence(item, spec, batch)
    field = str(item.get("field") or "")
    return f"{label(field, spec)}: {item.get('message')}" if field else str(item.get("message"))
