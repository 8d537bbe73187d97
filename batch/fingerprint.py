"""The hash of everything that shapes an action's output, so a re-run redoes exactly what changed."""

from __future__ import annotations

import hashlib
import json

FORMAT = 1  # bump when the batch's own output format changes


def action_keys(action) -> list:
    """Every key of the action: (data path, index, [(frame, value, interpolation), ...]) per F-curve."""
    out = []
    for fcurve in fcurves(action):
        out.append(
            [
                fcurve.data_path,
                fcurve.array_index,
                [[round(k.co[0], 4), round(k.co[1], 6), k.interpolation] for k in fcurve.keyframe_points],
            ]
        )
    return sorted(out, key=lambda c: (c[0], c[1]))


def fcurves(action):
    """The F-curves of a layered (Blender 4.4+, the only kind in 5.0) or legacy action."""
    layers = getattr(action, "layers", None)
    if layers:
        for layer in layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    yield from bag.fcurves
    else:
        yield from getattr(action, "fcurves", ())


def digest(parts: dict) -> str:
    text = json.dumps({"format": FORMAT, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path) -> str:
    """The content of an input file (a reference image): a changed image redoes the actions that use it."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
