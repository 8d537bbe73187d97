"""parse_spec: a decoded JSON spec checked field by field into a JobSpec; guide_errors: uploads against a spec."""

from __future__ import annotations

from .camera_path import camera_path_errors
from .numbers import LIMITS, _number
from .spec import ControlSpec, JobSpec, SparseCtrlSpec, SpecError
from .spec_parts import _cameractrl, _context, _fields, _free_init, _init, _prompt_keys, _references, _weighted_list
from .vocabulary import (
    CAMERA_MOTION_MODES,
    CAMERACTRL_MAX_FRAMES,
    CONTROL_KINDS,
    FORM_DEPTH,
    FORM_INIT,
    FORM_KEYFRAME,
    FORM_NORMAL,
    FORM_POSE,
    FORM_REFERENCE,
    GUIDE_FORM,
    PROMPT_WEIGHTINGS,
    PROTOCOL_VERSION,
    SCHEDULERS,
)

# The spec's nested parts, each parsed into its typed record by its own parser
_PARTS = (
    "loras",
    "motion_loras",
    "controlnets",
    "sparsectrl",
    "cameractrl",
    "context",
    "prompts",
    "references",
    "init",
    "free_init",
)


def parse_spec(data) -> JobSpec:
    """Validate a decoded JSON spec and return a JobSpec. Raises SpecError listing every problem found."""
    errors: list[tuple[str, str]] = []
    if not isinstance(data, dict):
        raise SpecError([("spec", "must be a JSON object")])
    data = _fields(errors, "", data, JobSpec)
    version = data.get("version", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        errors.append(("version", f"this server speaks protocol version {PROTOCOL_VERSION}, got {version!r}"))
    if not isinstance(data.get("prompt"), str) or not data.get("prompt", "").strip():
        errors.append(("prompt", "is required and must be a non-empty string"))
    if not isinstance(data.get("negative_prompt", ""), str):
        errors.append(("negative_prompt", "must be a string"))
    for name in ("base", "motion_module", "scheduler", "camera_motion"):
        if name in data and (not isinstance(data[name], str) or not data[name]):
            errors.append((name, "must be a non-empty string"))
    _number(errors, "seed", data.get("seed", 0), 0, 2**63 - 1, integer=True)
    _number(errors, "steps", data.get("steps", 25), *LIMITS["steps"], integer=True)
    _number(errors, "guidance", data.get("guidance", 7.5), *LIMITS["guidance"])
    for name in ("width", "height"):
        value = data.get(name, 512)
        if _number(errors, name, value, *LIMITS["size"], integer=True) and value % 8:
            errors.append((name, f"must be a multiple of 8, got {value} (try {value // 8 * 8})"))
    _number(errors, "frames", data.get("frames", 16), *LIMITS["frames"], integer=True)
    _number(errors, "frame_start", data.get("frame_start", 1), -(10**7), 10**7, integer=True)
    _number(errors, "fps", data.get("fps", 8), *LIMITS["fps"], integer=True)
    if data.get("scheduler", "ddim") not in SCHEDULERS:
        errors.append(
            ("scheduler", f"unknown scheduler {data.get('scheduler')!r}; choose one of {', '.join(SCHEDULERS)}")
        )
    if data.get("camera_motion", "manual") not in CAMERA_MOTION_MODES:
        errors.append(("camera_motion", f"must be one of {', '.join(CAMERA_MOTION_MODES)}"))

    loras = _weighted_list(errors, "loras", data.get("loras", []), *LIMITS["weight"])
    motion_loras = _weighted_list(errors, "motion_loras", data.get("motion_loras", []), *LIMITS["motion_lora_weight"])
    seen = set()
    for i, m in enumerate(motion_loras):
        if m.name in seen:
            errors.append((f"motion_loras[{i}].name", f"{m.name!r} is listed twice"))
        seen.add(m.name)

    controlnets = []
    raw_controls = data.get("controlnets", [])
    if not isinstance(raw_controls, list):
        errors.append(("controlnets", "must be a list"))
        raw_controls = []
    kinds_seen = set()
    for i, item in enumerate(raw_controls):
        at = f"controlnets[{i}]"
        if not isinstance(item, dict):
            errors.append((at, 'must be an object with "kind"'))
            continue
        item = _fields(errors, f"{at}.", item, ControlSpec)
        kind = item.get("kind")
        if kind not in CONTROL_KINDS:
            errors.append((f"{at}.kind", f"must be one of {', '.join(CONTROL_KINDS)}, got {kind!r}"))
            continue
        if kind in kinds_seen:
            errors.append((f"{at}.kind", f"{kind!r} is listed twice"))
        kinds_seen.add(kind)
        ok = _number(errors, f"{at}.weight", item.get("weight", 1.0), *LIMITS["weight"])
        ok &= _number(errors, f"{at}.start", item.get("start", 0.0), 0.0, 1.0)
        ok &= _number(errors, f"{at}.end", item.get("end", 1.0), 0.0, 1.0)
        if ok and item.get("start", 0.0) >= item.get("end", 1.0):
            errors.append((f"{at}.start", "must be below end"))
        model = item.get("model", "") or kind
        if not isinstance(item.get("model", ""), str):
            errors.append((f"{at}.model", "must be a string"))
        elif ok:
            controlnets.append(
                ControlSpec(
                    kind,
                    model,
                    float(item.get("weight", 1.0)),
                    float(item.get("start", 0.0)),
                    float(item.get("end", 1.0)),
                )
            )

    sparsectrl = None
    if data.get("sparsectrl") is not None:
        raw = data["sparsectrl"]
        if not isinstance(raw, dict):
            errors.append(("sparsectrl", 'must be an object with "keyframes"'))
        else:
            raw = _fields(errors, "sparsectrl.", raw, SparseCtrlSpec)
            keys = raw.get("keyframes", [])
            frames = data.get("frames", 16)
            if not isinstance(keys, list) or not keys:
                errors.append(("sparsectrl.keyframes", "must be a non-empty list of frame indices"))
                keys = []
            for i, k in enumerate(keys):
                if isinstance(frames, int):
                    _number(errors, f"sparsectrl.keyframes[{i}]", k, 0, max(frames - 1, 0), integer=True)
            if len(set(map(str, keys))) != len(keys):
                errors.append(("sparsectrl.keyframes", "lists a frame twice"))
            _number(errors, "sparsectrl.weight", raw.get("weight", 1.0), *LIMITS["weight"])
            if not isinstance(raw.get("model", "rgb"), str):
                errors.append(
                    ("sparsectrl.model", f"must be the name of a SparseCtrl model (a string), got {raw.get('model')!r}")
                )
            sparsectrl = SparseCtrlSpec(
                raw.get("model") or "rgb",
                list(keys),
                float(raw.get("weight", 1.0)) if isinstance(raw.get("weight", 1.0), (int, float)) else 1.0,
            )

    camera = data.get("camera")
    if camera is not None:
        errors += camera_path_errors(camera, data.get("frames", 16))
    if data.get("camera_motion") in ("auto", "cameractrl") and camera is None:
        errors.append(("camera_motion", f'"{data["camera_motion"]}" needs a camera path in "camera"'))
    cameractrl = _cameractrl(errors, data.get("cameractrl"), data.get("camera_motion", "manual"))
    if cameractrl is not None:
        for name in ("width", "height"):
            value = data.get(name, 512)
            if isinstance(value, int) and value % 64:
                errors.append(
                    (
                        name,
                        f"CameraCtrl needs a multiple of 64 (its pose features are pooled down to "
                        f"1/64 like the UNet's deepest block), got {value} "
                        f"(try {max(64, value // 64 * 64)})",
                    )
                )
        frames, context = data.get("frames", 16), data.get("context")
        length = context.get("length", 16) if isinstance(context, dict) else None
        # a clip that fits in one window runs as it is (no window): then only its own length counts
        seen = min(length, frames) if isinstance(length, int) and isinstance(frames, int) else length
        if isinstance(seen, int) and seen > CAMERACTRL_MAX_FRAMES:
            errors.append(
                (
                    "context.length",
                    f"CameraCtrl sees at most {CAMERACTRL_MAX_FRAMES} frames at once; "
                    f"use windows of at most {CAMERACTRL_MAX_FRAMES}",
                )
            )
        elif context is None and isinstance(frames, int) and frames > CAMERACTRL_MAX_FRAMES:
            errors.append(
                (
                    "frames",
                    f"CameraCtrl sees at most {CAMERACTRL_MAX_FRAMES} frames at once; send "
                    f'"context" windows (e.g. length 16, overlap 4) for {frames} frames',
                )
            )

    frames = data.get("frames", 16)
    context = _context(errors, data.get("context"), frames)
    prompts = _prompt_keys(errors, data.get("prompts", []), frames)
    references = _references(errors, data.get("references", []), frames)
    init = _init(errors, data.get("init"))
    free_init = _free_init(errors, data.get("free_init"))
    _number(errors, "motion_scale", data.get("motion_scale", 1.0), *LIMITS["motion_scale"])
    _number(errors, "clip_skip", data.get("clip_skip", 1), *LIMITS["clip_skip"], integer=True)
    if data.get("prompt_weighting", "a1111") not in PROMPT_WEIGHTINGS:
        errors.append(
            (
                "prompt_weighting",
                f"unknown prompt weighting {data.get('prompt_weighting')!r}; choose one of "
                f"{', '.join(PROMPT_WEIGHTINGS)} (A1111's or ComfyUI's way of reading (word:1.2))",
            )
        )
    if not isinstance(data.get("vae", ""), str):
        errors.append(("vae", "must be a string: a vae name of the server's model config, or empty for the base's own"))
    if errors:
        raise SpecError(errors)
    plain = {k: v for k, v in data.items() if k not in _PARTS}
    return JobSpec(
        **plain,
        loras=loras,
        motion_loras=motion_loras,
        controlnets=controlnets,
        sparsectrl=sparsectrl,
        cameractrl=cameractrl,
        context=context,
        prompts=prompts,
        references=references,
        init=init,
        free_init=free_init,
    )


def guide_errors(spec: JobSpec, counts: dict[str, int]) -> list[tuple[str, str]]:
    """Check that the uploaded guides match the spec. `counts` maps form field -> number of parts sent."""
    errors = []
    for control in spec.controlnets:
        field_name = GUIDE_FORM[control.kind]
        if field_name == FORM_POSE:
            if counts.get(FORM_POSE, 0) != 1:
                errors.append((FORM_POSE, "the openpose ControlNet needs one pose JSON file"))
        elif counts.get(field_name, 0) != spec.frames:
            errors.append(
                (
                    field_name,
                    f"{counts.get(field_name, 0)} {field_name} images for {spec.frames} frames; send one per frame",
                )
            )
    used = {GUIDE_FORM[c.kind] for c in spec.controlnets}
    for name in (FORM_DEPTH, FORM_NORMAL, FORM_POSE):
        if counts.get(name, 0) and name not in used:
            errors.append(
                (
                    name,
                    f"{name} guides were sent but no ControlNet uses them; add a controlnets entry or leave them out",
                )
            )
    wanted = len(spec.sparsectrl.keyframes) if spec.sparsectrl else 0
    if counts.get(FORM_KEYFRAME, 0) != wanted:
        errors.append(
            (FORM_KEYFRAME, f"{counts.get(FORM_KEYFRAME, 0)} keyframe images for {wanted} sparsectrl.keyframes")
        )
    if counts.get(FORM_REFERENCE, 0) != len(spec.references):
        errors.append(
            (
                FORM_REFERENCE,
                f"{counts.get(FORM_REFERENCE, 0)} reference images for {len(spec.references)} references; "
                "send one per references entry, in order",
            )
        )
    wanted = spec.frames if spec.init is not None else 0
    if counts.get(FORM_INIT, 0) != wanted:
        errors.append(
            (
                FORM_INIT,
                f"{counts.get(FORM_INIT, 0)} init images for {spec.frames} frames; send one per frame with "
                '"init", none without it',
            )
        )
    return errors
