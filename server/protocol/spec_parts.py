"""Parsers of the spec's nested parts: each appends (field, message) errors and returns the typed part or None."""

from __future__ import annotations

from .numbers import LIMITS, _number
from .spec import CameraCtrlSpec, ContextSpec, FreeInitSpec, InitSpec, PromptKey, ReferenceSpec, Weighted
from .vocabulary import FREE_INIT_FILTERS, FUSE_MODES, WINDOW_MODES
from .windows import context_windows


def _fields(errors, where, data, cls):
    known = set(cls.__dataclass_fields__)
    for key in data:
        if key not in known:
            errors.append((f"{where}{key}", f"unknown field; known fields: {', '.join(sorted(known))}"))
    return {k: v for k, v in data.items() if k in known}


def _weighted_list(errors, where, items, lo, hi):
    out = []
    if not isinstance(items, list):
        errors.append((where, 'must be a list of {"name", "weight"}'))
        return out
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item.get("name"):
            errors.append((at, 'must be an object with a non-empty "name"'))
            continue
        item = _fields(errors, f"{at}.", item, Weighted)
        weight = item.get("weight", 1.0)
        if _number(errors, f"{at}.weight", weight, lo, hi):
            out.append(Weighted(item["name"], float(weight)))
    return out


def _cameractrl(errors, raw, mode) -> CameraCtrlSpec | None:
    if mode != "cameractrl":
        if raw is not None:
            errors.append(("cameractrl", 'is used only with camera_motion "cameractrl"; set that or leave it out'))
        return None
    if raw is None:
        return CameraCtrlSpec()
    if not isinstance(raw, dict):
        errors.append(("cameractrl", 'must be an object: {"model", "scale"}'))
        return None
    raw = _fields(errors, "cameractrl.", raw, CameraCtrlSpec)
    model, scale = raw.get("model", "cameractrl"), raw.get("scale", 1.0)
    ok = _number(errors, "cameractrl.scale", scale, 0.0, LIMITS["weight"][1])
    if not isinstance(model, str) or not model:
        errors.append(("cameractrl.model", "must be the name of a camera_control model of the server's config"))
        ok = False
    return CameraCtrlSpec(model, float(scale)) if ok else None


def _context(errors, raw, frames) -> ContextSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(("context", 'must be an object: {"length", "overlap", "loop", "fuse", "mode", "motion_scales"}'))
        return None
    raw = _fields(errors, "context.", raw, ContextSpec)
    length, overlap, loop = raw.get("length", 16), raw.get("overlap", 4), raw.get("loop", False)
    ok = _number(errors, "context.length", length, 2, LIMITS["frames"][1], integer=True)
    if ok:
        ok = _number(errors, "context.overlap", overlap, 0, length - 1, integer=True)
    if not isinstance(loop, bool):
        errors.append(("context.loop", "must be true or false"))
        ok = False
    if raw.get("fuse", "pyramid") not in FUSE_MODES:
        errors.append(("context.fuse", f"must be one of {', '.join(FUSE_MODES)}"))
        ok = False
    if raw.get("mode", "temporal") not in WINDOW_MODES:
        errors.append(("context.mode", f"must be one of {', '.join(WINDOW_MODES)}"))
        ok = False
    scales = raw.get("motion_scales", [])
    if not isinstance(scales, list):
        errors.append(("context.motion_scales", "must be a list of numbers, one per window"))
        ok = False
    else:
        for i, scale in enumerate(scales):
            ok &= _number(errors, f"context.motion_scales[{i}]", scale, *LIMITS["motion_scale"])
        if ok and scales and isinstance(frames, int) and frames > 0:
            count = len(context_windows(frames, length, overlap, loop))
            if len(scales) != count:
                errors.append(
                    (
                        "context.motion_scales",
                        f"{len(scales)} values for {count} windows ({frames} frames, windows of {length} "
                        f"overlapping by {overlap}); give one per window or none",
                    )
                )
                ok = False
    if not ok:
        return None
    return ContextSpec(
        length, overlap, loop, raw.get("fuse", "pyramid"), raw.get("mode", "temporal"), [float(s) for s in scales]
    )


def _prompt_keys(errors, raw, frames) -> list[PromptKey]:
    if not isinstance(raw, list):
        errors.append(("prompts", 'must be a list of {"frame", "prompt"}'))
        return []
    keys, seen = [], set()
    for i, item in enumerate(raw):
        at = f"prompts[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            errors.append((at, 'must be an object with a non-empty "prompt" and a "frame"'))
            continue
        item = _fields(errors, f"{at}.", item, PromptKey)
        last = frames - 1 if isinstance(frames, int) and frames > 0 else 0
        if _number(errors, f"{at}.frame", item.get("frame"), 0, last, integer=True):
            if item["frame"] in seen:
                errors.append((f"{at}.frame", f"frame {item['frame']} has two prompts"))
            seen.add(item["frame"])
            keys.append(PromptKey(item["frame"], item["prompt"]))
    return keys


def _last_frame(frames) -> int:
    return frames - 1 if isinstance(frames, int) and frames > 0 else 0


def _references(errors, raw, frames) -> list[ReferenceSpec]:
    if not isinstance(raw, list):
        errors.append(("references", 'must be a list of {"model", "weight", "start", "end", "first", "last"}'))
        return []
    if len(raw) > LIMITS["references"][1]:
        errors.append(("references", f"{len(raw)} references; at most {LIMITS['references'][1]} are allowed"))
        return []
    out, last = [], _last_frame(frames)
    for i, item in enumerate(raw):
        at = f"references[{i}]"
        if not isinstance(item, dict):
            errors.append((at, 'must be an object: {"model", "weight", "start", "end", "first", "last"}'))
            continue
        item = _fields(errors, f"{at}.", item, ReferenceSpec)
        model = item.get("model", "ip_adapter")
        ok = isinstance(model, str) and bool(model)
        if not ok:
            errors.append((f"{at}.model", "must be the name of an ip_adapter model of the server's config"))
        ok &= _number(errors, f"{at}.weight", item.get("weight", 1.0), *LIMITS["weight"])
        ok &= _number(errors, f"{at}.start", item.get("start", 0.0), 0.0, 1.0)
        ok &= _number(errors, f"{at}.end", item.get("end", 1.0), 0.0, 1.0)
        if ok and item.get("start", 0.0) >= item.get("end", 1.0):
            errors.append((f"{at}.start", "must be below end"))
            ok = False
        first = item.get("first", 0)
        ok &= _number(errors, f"{at}.first", first, 0, last, integer=True)
        end_frame = item.get("last")
        if end_frame is not None and ok:
            ok &= _number(errors, f"{at}.last", end_frame, first, last, integer=True)
        if ok:
            out.append(
                ReferenceSpec(
                    model,
                    float(item.get("weight", 1.0)),
                    float(item.get("start", 0.0)),
                    float(item.get("end", 1.0)),
                    first,
                    end_frame,
                )
            )
    return out


def _init(errors, raw) -> InitSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(("init", 'must be an object: {"strength"} (and one "init" image per frame)'))
        return None
    raw = _fields(errors, "init.", raw, InitSpec)
    strength = raw.get("strength", InitSpec.strength)
    return InitSpec(float(strength)) if _number(errors, "init.strength", strength, 0.0, 1.0) else None


def _free_init(errors, raw) -> FreeInitSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(("free_init", 'must be an object: {"iterations", "filter", "spatial_cutoff", "temporal_cutoff"}'))
        return None
    raw = _fields(errors, "free_init.", raw, FreeInitSpec)
    default = FreeInitSpec()
    iterations = raw.get("iterations", default.iterations)
    ok = _number(errors, "free_init.iterations", iterations, *LIMITS["free_init_iterations"], integer=True)
    if raw.get("filter", default.filter) not in FREE_INIT_FILTERS:
        errors.append(("free_init.filter", f"must be one of {', '.join(FREE_INIT_FILTERS)}"))
        ok = False
    cutoffs = []
    for name in ("spatial_cutoff", "temporal_cutoff"):
        value = raw.get(name, getattr(default, name))
        if not _number(errors, f"free_init.{name}", value, 0.0, 1.0):
            ok = False
        elif value == 0:
            errors.append((f"free_init.{name}", "must be above 0 (0 would keep no low frequencies at all)"))
            ok = False
        cutoffs.append(value)
    return FreeInitSpec(iterations, raw.get("filter", default.filter), *map(float, cutoffs)) if ok else None
