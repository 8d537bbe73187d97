"""Marionette's wire format: the job spec, its validation, guide rules and event names.

Standard library only: the Blender add-on imports this package too (as `server.protocol`, or relatively inside
Blender). Everything a client and the server must agree on lives here and nowhere else: the number checks in
`numbers.py`, the camera path's in `camera_path.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .camera_path import CAMERA_MATCH_DEFAULTS as CAMERA_MATCH_DEFAULTS  # part of the wire format
from .camera_path import camera_path_errors
from .numbers import LIMITS, _number

PROTOCOL_VERSION = 1
# Not 7860 (AUTOMATIC1111, Forge, Gradio and the ports Gradio counts up to), 8188 (ComfyUI), 9090 (InvokeAI),
# 11434 (Ollama): the add-on tells its own server from another program by /health anyway.
DEFAULT_PORT = 8420

# Camera motion LoRAs (AnimateDiff v2). Each name describes what the CAMERA does; the second column is how the
# content moves on screen as a result. Official file stem and diffusers hub repo follow.
MOTION_LORAS = {
    "zoom_in": ("content grows", "v2_lora_ZoomIn", "guoyww/animatediff-motion-lora-zoom-in"),
    "zoom_out": ("content shrinks", "v2_lora_ZoomOut", "guoyww/animatediff-motion-lora-zoom-out"),
    "pan_left": ("content drifts right", "v2_lora_PanLeft", "guoyww/animatediff-motion-lora-pan-left"),
    "pan_right": ("content drifts left", "v2_lora_PanRight", "guoyww/animatediff-motion-lora-pan-right"),
    "tilt_up": ("content drifts down", "v2_lora_TiltUp", "guoyww/animatediff-motion-lora-tilt-up"),
    "tilt_down": ("content drifts up", "v2_lora_TiltDown", "guoyww/animatediff-motion-lora-tilt-down"),
    "roll_clockwise": (
        "content turns anticlockwise",
        "v2_lora_RollingClockwise",
        "guoyww/animatediff-motion-lora-rolling-clockwise",
    ),
    "roll_anticlockwise": (
        "content turns clockwise",
        "v2_lora_RollingAnticlockwise",
        "guoyww/animatediff-motion-lora-rolling-anticlockwise",
    ),
}

# What each motion LoRA means for the camera: the one direction table (README "Camera matching" quotes it).
# server/camera/motion.py measures four signals from the camera path, each positive one way:
#   pan  > 0: the camera turns (yaws) or slides to its own RIGHT     tilt > 0: it pitches UP or rises
#   zoom > 0: the focal length grows or it moves toward what it sees  roll > 0: it rolls CLOCKWISE seen from behind
# A LoRA is chosen when its signal has its sign: name -> (signal, sign, what the camera does).
CAMERA_DIRECTIONS = {
    "zoom_in": ("zoom", +1, "focal length grows, or the camera moves toward what it looks at"),
    "zoom_out": ("zoom", -1, "focal length shrinks, or the camera moves away from what it looks at"),
    "pan_left": ("pan", -1, "the camera turns or slides to its own left"),
    "pan_right": ("pan", +1, "the camera turns or slides to its own right"),
    "tilt_up": ("tilt", +1, "the camera pitches up or rises"),
    "tilt_down": ("tilt", -1, "the camera pitches down or sinks"),
    "roll_clockwise": ("roll", +1, "the camera rolls clockwise as seen from behind it"),
    "roll_anticlockwise": ("roll", -1, "the camera rolls anticlockwise as seen from behind it"),
}
CONTROL_KINDS = ("depth", "normal", "openpose")
SCHEDULERS = ("ddim", "euler", "dpmpp_2m", "lcm", "euler_trailing")
CAMERA_MOTION_MODES = ("manual", "auto", "cameractrl")
CAMERACTRL_MAX_FRAMES = 16  # CameraCtrl's pose encoder has 16 positions: it sees at most 16 frames at once
CAMERACTRL_GUIDANCE = 14.0  # the guidance CameraCtrl's authors sample with (inference.py's default)
EVENT_TYPES = ("queued", "loading", "step", "frame", "done", "error", "cancelled", "interrupted")
JOB_STATES = ("queued", "running", "done", "error", "cancelled", "interrupted")
# "interrupted": the server stopped (killed, crashed) while the job was queued or running; its frames stay served.
FINAL_EVENTS = ("done", "error", "cancelled", "interrupted")

# Multipart form fields of POST /jobs (see README "API").
FORM_SPEC = "spec"  # the JSON spec, a text field
FORM_DEPTH = "depth"  # one PNG per frame, repeated, in frame order
FORM_NORMAL = "normal"  # one PNG per frame, repeated, in frame order
FORM_POSE = "pose"  # one JSON file: a list with one OpenPose-style frame per frame
FORM_KEYFRAME = "keyframe"  # one image per SparseCtrl keyframe, in the order of spec.sparsectrl.keyframes
# The one vocabulary of guides: ControlNet kind (CONTROL_KINDS) -> the form field that carries its guide. The
# openpose ControlNet's guide travels as keypoints (one pose JSON file) that the server draws.
GUIDE_FORM = {"depth": FORM_DEPTH, "normal": FORM_NORMAL, "openpose": FORM_POSE}


class SpecError(ValueError):
    """A spec that cannot run. `errors` lists (field, message) pairs, each naming what to fix."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))


@dataclass
class Weighted:
    name: str
    weight: float = 1.0


@dataclass
class ControlSpec:
    kind: str  # depth | normal | openpose: which guide feeds it
    model: str = ""  # ControlNet name in the server's model config; empty: the same as kind
    weight: float = 1.0
    start: float = 0.0  # fraction of the denoising steps where the ControlNet starts acting
    end: float = 1.0


@dataclass
class SparseCtrlSpec:
    model: str = "rgb"
    keyframes: list[int] = field(default_factory=list)  # 0-based frame indices; one uploaded image each
    weight: float = 1.0


@dataclass
class CameraCtrlSpec:
    """CameraCtrl conditioning with camera_motion "cameractrl": the camera path drives the v3 motion module."""

    model: str = "cameractrl"  # camera_control name in the server's model config
    scale: float = 1.0  # the pose features' weight in the temporal attention; 0: as without CameraCtrl


@dataclass
class ContextSpec:
    """Context windows for clips longer than the motion module was trained on (or to loop)."""

    length: int = 16
    overlap: int = 4
    loop: bool = False
    fuse: str = "pyramid"  # pyramid | flat
    mode: str = "temporal"  # temporal: only the motion modules see windows | unet: the whole UNet per window


@dataclass
class PromptKey:
    frame: int  # 0-based frame index where this prompt holds fully
    prompt: str


FUSE_MODES = ("pyramid", "flat")
WINDOW_MODES = ("temporal", "unet")


@dataclass
class JobSpec:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 25
    guidance: float = 7.5
    width: int = 512
    height: int = 512
    frames: int = 16
    frame_start: int = 1  # the scene frame of index 0, kept for the client's naming
    fps: int = 8
    scheduler: str = "ddim"
    base: str = "sd15"
    motion_module: str = "v2"
    loras: list[Weighted] = field(default_factory=list)
    controlnets: list[ControlSpec] = field(default_factory=list)
    sparsectrl: SparseCtrlSpec | None = None
    motion_loras: list[Weighted] = field(default_factory=list)
    camera_motion: str = "manual"
    camera: dict | None = None
    cameractrl: CameraCtrlSpec | None = None  # set (defaults filled in) exactly when camera_motion is "cameractrl"
    context: ContextSpec | None = None
    prompts: list[PromptKey] = field(default_factory=list)  # prompt travel; `prompt` holds where empty
    version: int = PROTOCOL_VERSION

    def to_dict(self) -> dict:
        """The spec as the JSON object sent on the wire (parse_spec reads it back to an equal spec)."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


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
        if isinstance(length, int) and length > CAMERACTRL_MAX_FRAMES:
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

    context = _context(errors, data.get("context"))
    prompts = _prompt_keys(errors, data.get("prompts", []), data.get("frames", 16))
    if errors:
        raise SpecError(errors)
    plain = {
        k: v
        for k, v in data.items()
        if k not in ("loras", "motion_loras", "controlnets", "sparsectrl", "cameractrl", "context", "prompts")
    }
    return JobSpec(
        **plain,
        loras=loras,
        motion_loras=motion_loras,
        controlnets=controlnets,
        sparsectrl=sparsectrl,
        cameractrl=cameractrl,
        context=context,
        prompts=prompts,
    )


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


def _context(errors, raw) -> ContextSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(("context", 'must be an object: {"length", "overlap", "loop", "fuse", "mode"}'))
        return None
    raw = _fields(errors, "context.", raw, ContextSpec)
    length, overlap = raw.get("length", 16), raw.get("overlap", 4)
    ok = _number(errors, "context.length", length, 2, LIMITS["frames"][1], integer=True)
    if ok:
        ok = _number(errors, "context.overlap", overlap, 0, length - 1, integer=True)
    if not isinstance(raw.get("loop", False), bool):
        errors.append(("context.loop", "must be true or false"))
        ok = False
    if raw.get("fuse", "pyramid") not in FUSE_MODES:
        errors.append(("context.fuse", f"must be one of {', '.join(FUSE_MODES)}"))
        ok = False
    if raw.get("mode", "temporal") not in WINDOW_MODES:
        errors.append(("context.mode", f"must be one of {', '.join(WINDOW_MODES)}"))
        ok = False
    return (
        ContextSpec(length, overlap, raw.get("loop", False), raw.get("fuse", "pyramid"), raw.get("mode", "temporal"))
        if ok
        else None
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
    return errors


def frame_filename(index: int) -> str:
    """The file of frame `index` (0-based, as in the spec and the events): numbered from 1, frame_0001.png, so that
    Blender reads the files as an image sequence starting at 1. The server and the add-on both name frames here."""
    return f"frame_{index + 1:04d}.png"


def format_event(seq: int, kind: str, data: dict) -> bytes:
    """One server-sent event. `id` lets a client resume with Last-Event-ID."""
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def parse_events(lines):
    """Parse a server-sent event stream (an iterable of text lines) into (id, type, data) tuples."""
    seq, kind, data = None, "message", []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield seq, kind, json.loads("\n".join(data))
            seq, kind, data = None, "message", []
        elif line.startswith("id:"):
            seq = int(line[3:].strip())
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
