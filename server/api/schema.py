"""The request bodies of the routes, declared in the OpenAPI schema (the routes read their bodies themselves, through
the validation layer, so FastAPI cannot infer them). Built from the protocol's own names and limits."""

from __future__ import annotations

from fastapi import FastAPI

from ..protocol import (
    CAMERA_MOTION_MODES,
    CONTROL_KINDS,
    FORM_DEPTH,
    FORM_INIT,
    FORM_KEYFRAME,
    FORM_NORMAL,
    FORM_POSE,
    FORM_REFERENCE,
    FORM_SPEC,
    FREE_INIT_FILTERS,
    FUSE_MODES,
    LIMITS,
    PROMPT_WEIGHTINGS,
    PROTOCOL_VERSION,
    SCHEDULERS,
    WINDOW_MODES,
)


def _range(kind, lo, hi, default=None):
    out = {"type": kind, "minimum": lo, "maximum": hi}
    if default is not None:
        out["default"] = default
    return out


# Fractions of the denoising steps where a ControlNet or a reference acts; start is below end.
START = {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.0}
END = {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 1.0}


def _weighted(lo, hi):
    return {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1}, "weight": _range("number", lo, hi, 1.0)},
        },
    }


def _matrix(rows, cols):
    return {
        "type": "array",
        "minItems": rows,
        "maxItems": rows,
        "items": {"type": "array", "minItems": cols, "maxItems": cols, "items": {"type": "number"}},
    }


CAMERA_PATH = {
    "type": "object",
    "required": ["fps", "width", "height", "frames"],
    "properties": {
        "fps": {"type": "number", "exclusiveMinimum": 0},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "up": {"type": "array", "items": {"type": "number"}},
        "max_weight": _range("number", 0, LIMITS["motion_lora_weight"][1]),
        "window": _range("integer", 2, LIMITS["frames"][1]),
        "overlap": {"type": "integer", "minimum": 0},
        "frames": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "required": ["frame", "K", "world_to_camera"],
                "properties": {
                    "frame": {"type": "integer"},
                    "K": _matrix(3, 3),
                    "world_to_camera": _matrix(4, 4),
                    "depth": {"type": ["number", "null"], "exclusiveMinimum": 0},
                },
            },
        },
    },
}

JOB_SPEC = {
    "type": "object",
    "required": ["prompt"],
    "additionalProperties": False,
    "properties": {
        "prompt": {"type": "string", "minLength": 1},
        "negative_prompt": {"type": "string", "default": ""},
        "seed": _range("integer", 0, 2**63 - 1, 0),
        "steps": _range("integer", *LIMITS["steps"], 25),
        "guidance": _range("number", *LIMITS["guidance"], 7.5),
        "width": {**_range("integer", *LIMITS["size"], 512), "multipleOf": 8},
        "height": {**_range("integer", *LIMITS["size"], 512), "multipleOf": 8},
        "frames": _range("integer", *LIMITS["frames"], 16),
        "frame_start": _range("integer", -(10**7), 10**7, 1),
        "fps": _range("integer", *LIMITS["fps"], 8),
        "scheduler": {"enum": list(SCHEDULERS), "default": "ddim"},
        "base": {"type": "string", "minLength": 1, "default": "sd15"},
        "motion_module": {"type": "string", "minLength": 1, "default": "v2"},
        "loras": _weighted(*LIMITS["weight"]),
        "motion_loras": _weighted(*LIMITS["motion_lora_weight"]),
        "controlnets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kind"],
                "additionalProperties": False,
                "properties": {
                    "kind": {"enum": list(CONTROL_KINDS)},
                    "model": {"type": "string", "default": "", "description": "empty: the ControlNet named as kind"},
                    "weight": _range("number", *LIMITS["weight"], 1.0),
                    "start": START,
                    "end": END,
                },
            },
        },
        "sparsectrl": {
            "type": ["object", "null"],
            "required": ["keyframes"],
            "additionalProperties": False,
            "properties": {
                "model": {"type": "string", "default": "rgb"},
                "keyframes": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
                "weight": _range("number", *LIMITS["weight"], 1.0),
            },
        },
        "camera_motion": {"enum": list(CAMERA_MOTION_MODES), "default": "manual"},
        "camera": {"oneOf": [CAMERA_PATH, {"type": "null"}]},
        "cameractrl": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "description": 'with camera_motion "cameractrl" (defaults filled in when left out)',
            "properties": {
                "model": {"type": "string", "minLength": 1, "default": "cameractrl"},
                "scale": _range("number", 0.0, LIMITS["weight"][1], 1.0),
            },
        },
        "context": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "length": _range("integer", 2, LIMITS["frames"][1], 16),
                "overlap": {"type": "integer", "minimum": 0, "default": 4},
                "loop": {"type": "boolean", "default": False},
                "fuse": {"enum": list(FUSE_MODES), "default": "pyramid"},
                "mode": {"enum": list(WINDOW_MODES), "default": "temporal"},
                "motion_scales": {"type": "array", "items": _range("number", *LIMITS["motion_scale"])},
            },
        },
        "init": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {"strength": _range("number", 0, 1, 0.6)},
        },
        "free_init": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "iterations": _range("integer", *LIMITS["free_init_iterations"], 3),
                "filter": {"enum": list(FREE_INIT_FILTERS), "default": "butterworth"},
                "spatial_cutoff": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.25},
                "temporal_cutoff": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.25},
            },
        },
        "motion_scale": _range("number", *LIMITS["motion_scale"], 1.0),
        "prompts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["frame", "prompt"],
                "additionalProperties": False,
                "properties": {
                    "frame": {"type": "integer", "minimum": 0},
                    "prompt": {"type": "string", "minLength": 1},
                },
            },
        },
        "references": {
            "type": "array",
            "maxItems": LIMITS["references"][1],
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "model": {"type": "string", "minLength": 1, "default": "ip_adapter"},
                    "weight": _range("number", *LIMITS["weight"], 1.0),
                    "start": START,
                    "end": END,
                    "first": {"type": "integer", "minimum": 0, "default": 0},
                    "last": {"type": ["integer", "null"], "minimum": 0, "default": None},
                },
            },
        },
        "vae": {"type": "string", "default": "", "description": "empty: the base checkpoint's own VAE"},
        "clip_skip": _range("integer", *LIMITS["clip_skip"], 1),
        "prompt_weighting": {
            "enum": list(PROMPT_WEIGHTINGS),
            "default": "a1111",
            "description": "a1111: A1111's prompt syntax and emphasis; comfy: ComfyUI's (see README 'Prompts')",
        },
        "version": {"enum": [PROTOCOL_VERSION], "default": PROTOCOL_VERSION},
    },
}

_FILES = {"type": "array", "items": {"type": "string", "format": "binary"}}
JOB_FORM = {
    "type": "object",
    "required": [FORM_SPEC],
    "properties": {
        FORM_SPEC: {"type": "string", "description": "the job spec as JSON text"},
        FORM_DEPTH: {**_FILES, "description": "one PNG per frame, in frame order"},
        FORM_NORMAL: {**_FILES, "description": "one PNG per frame, in frame order"},
        FORM_POSE: {
            "type": "string",
            "format": "binary",
            "description": "one JSON file: a list with one OpenPose frame per frame",
        },
        FORM_KEYFRAME: {**_FILES, "description": "one PNG per sparsectrl keyframe, in order"},
        FORM_REFERENCE: {**_FILES, "description": "one PNG (any size) per references entry, in order"},
        FORM_INIT: {**_FILES, "description": "with init: one PNG per frame, in frame order (video-to-video)"},
    },
}

POSE_PERSON = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        part: {"type": "array", "items": {"type": "number"}}
        for part in ("pose_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d")
    },
}
POSE_DRAW = {
    "type": "object",
    "required": ["width", "height", "people"],
    "additionalProperties": False,
    "properties": {
        "width": _range("integer", *LIMITS["size"]),
        "height": _range("integer", *LIMITS["size"]),
        "people": {"type": "array", "items": POSE_PERSON},
    },
}

BODIES = {
    ("/jobs", "post"): {
        "application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}},
        "multipart/form-data": {"schema": JOB_FORM},
    },
    ("/plan", "post"): {"application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}}},
    ("/pose/draw", "post"): {"application/json": {"schema": POSE_DRAW}},
}


def declare_bodies(app: FastAPI):
    """Make app.openapi() carry the request bodies above and the JobSpec schema."""

    def openapi():
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["JobSpec"] = JOB_SPEC
            for (path, method), content in BODIES.items():
                schema["paths"][path][method]["requestBody"] = {"required": True, "content": content}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
