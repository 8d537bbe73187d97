"""The label the artist sees in the panel for each field the add-on sends: `loras[1].name` is "LoRA 2 (inkStyle)",
`controlnets[0].model` "Depth guide model", `prompts[2].prompt` "Prompt at frame 40". The server's 422 items name
spec and upload fields; backend/model_errors.py puts these labels in their place. Standard library only."""

from __future__ import annotations

import re

# Field path with list indices as [] -> the panel's label. {n}: the 1-based position in its list; {name}: the
# model named there; {guide}: a ControlNet's guide; {frame}: the scene frame. The upload fields (form parts) come
# last. tests/test_field_labels.py holds it to every field a JobSpec has.
LABELS = {
    "prompt": "Prompt",
    "negative_prompt": "Negative",
    "prompts": "Prompts from markers",
    "prompts[]": "Prompt at frame {frame}",
    "prompts[].prompt": "Prompt at frame {frame}",
    "prompts[].frame": "Prompt marker at frame {frame}",
    "seed": "Seed",
    "steps": "Steps",
    "guidance": "Guidance",
    "width": "Output size (Long side)",
    "height": "Output size (Long side)",
    "frames": "Frame range",
    "frame_start": "Frame range Start",
    "fps": "Frame rate (the scene's)",
    "scheduler": "Scheduler",
    "base": "Checkpoint",
    "motion_module": "Motion module",
    "vae": "VAE",
    "clip_skip": "Clip skip",
    "prompt_weighting": "Prompt weighting",
    "loras": "Image LoRAs",
    "loras[]": "LoRA {n} ({name})",
    "loras[].name": "LoRA {n} ({name})",
    "loras[].weight": "LoRA {n} ({name}) weight",
    "controlnets": "Guides",
    "controlnets[]": "{guide} guide",
    "controlnets[].kind": "{guide} guide",
    "controlnets[].model": "{guide} guide model",
    "controlnets[].weight": "{guide} guide weight",
    "controlnets[].start": "{guide} guide start",
    "controlnets[].end": "{guide} guide end",
    "sparsectrl": "Keyframes",
    "sparsectrl.model": "Keyframes SparseCtrl model",
    "sparsectrl.keyframes": "Keyframes",
    "sparsectrl.weight": "Keyframe strength",
    "motion_loras": "Camera motion",
    "motion_loras[]": "Camera motion {name}",
    "motion_loras[].name": "Camera motion {name}",
    "motion_loras[].weight": "Camera motion {name}",
    "camera_motion": "Camera motion",
    "camera": "Camera (its path over the frame range)",
    "cameractrl": "Exact camera",
    "cameractrl.model": "Exact camera's CameraCtrl model",
    "cameractrl.scale": "Exact camera strength",
    "context": "Context windows",
    "context.length": "Context windows Window",
    "context.overlap": "Context windows Overlap",
    "context.loop": "Context windows Loop",
    "context.fuse": "Context windows Blend",
    "context.mode": "Context windows",
    "context.motion_scales": "Motion scales Per window",
    "references": "Image References",
    "references[]": "Reference {n}",
    "references[].model": "Reference {n} model",
    "references[].weight": "Reference {n} weight",
    "references[].start": "Reference {n} start",
    "references[].end": "Reference {n} end",
    "references[].first": "Reference {n} First",
    "references[].last": "Reference {n} Last",
    "init": "Start from the render",
    "init.strength": "Start from the render Strength",
    "free_init": "FreeInit iterations",
    "free_init.iterations": "FreeInit iterations",
    "free_init.filter": "FreeInit",
    "free_init.spatial_cutoff": "FreeInit",
    "free_init.temporal_cutoff": "FreeInit",
    "motion_scale": "Motion scale",
    "version": "Marionette version (add-on and server differ: update both)",
    # uploads (form parts): what the add-on renders and sends beside the spec
    "spec": "Settings",
    "depth": "Depth guide",
    "depth[]": "Depth guide of frame {frame}",
    "normal": "Normal guide",
    "normal[]": "Normal guide of frame {frame}",
    "pose": "Pose guide",
    "keyframe": "Keyframes",
    "keyframe[]": "Keyframe at frame {frame}",
    "reference": "Image References",
    "reference[]": "Reference {n} image",
    "init[]": "Start from the render, frame {frame}",
}
GUIDES = {"depth": "Depth", "normal": "Normal", "openpose": "Pose"}
_PART = re.compile(r"\.?(\w+)(?:\[(\d+)\])?")


def label(field: str, spec: dict) -> str:
    """The panel's label for a field path of the spec (or an upload), from the spec the add-on sent; a path the
    table lacks takes the label of its nearest parent, a path it knows nothing of stays as it is."""
    parts = _PART.findall(field) if _PART.sub("", field) == "" else []
    if not parts:
        return field
    keys = [f"{name}{'[]' if index else ''}" for name, index in parts]
    for depth in range(len(keys), 0, -1):
        template = LABELS.get(".".join(keys[:depth]))
        if template is not None:
            return template.format(**_values(parts[0], spec))
    return field


def _values(head: tuple[str, str], spec: dict) -> dict:
    """{n}, {name}, {guide} and {frame} for the list item a field path starts with."""
    root, index = head
    i = int(index) if index else 0
    items = spec.get(root)
    item = items[i] if isinstance(items, list) and 0 <= i < len(items) and isinstance(items[i], dict) else {}
    start = spec.get("frame_start", 1) if isinstance(spec.get("frame_start"), int) else 1
    frame = start + (item.get("frame", 0) if root == "prompts" and isinstance(item.get("frame"), int) else i)
    if root == "keyframe":
        keyframes = (spec.get("sparsectrl") or {}).get("keyframes") or []
        frame = start + keyframes[i] if i < len(keyframes) and isinstance(keyframes[i], int) else frame
    kind = item.get("kind", "")
    return {
        "n": i + 1,
        "name": item.get("name") or item.get("model") or "no name",
        "guide": GUIDES.get(kind, str(kind).capitalize() or "ControlNet"),
        "frame": frame,
    }
