"""Marionette's wire format: the job spec, its validation, guide rules and event names.

Standard library only: the Blender add-on imports this package too (as `server.protocol`, or relatively inside
Blender). Everything a client and the server must agree on lives here and nowhere else: the vocabulary in
`vocabulary.py`, the typed spec in `spec.py`, its validation in `parse.py` (nested parts in `spec_parts.py`, numbers
in `numbers.py`, the camera path in `camera_path.py`), raw-input checks in `inputs.py`, event framing in
`events.py`. Import the names from the package.
"""

from __future__ import annotations

from .camera_path import CAMERA_MATCH_DEFAULTS, camera_path_errors
from .events import format_event, parse_events
from .numbers import LIMITS
from .parse import guide_errors, parse_spec
from .spec import (
    CameraCtrlSpec,
    ContextSpec,
    ControlSpec,
    FreeInitSpec,
    InitSpec,
    JobSpec,
    PromptKey,
    ReferenceSpec,
    SparseCtrlSpec,
    SpecError,
    Weighted,
)
from .vocabulary import (
    CAMERA_DIRECTIONS,
    CAMERA_MOTION_MODES,
    CAMERACTRL_GUIDANCE,
    CAMERACTRL_MAX_FRAMES,
    CONTROL_KINDS,
    DEFAULT_PORT,
    EVENT_TYPES,
    FINAL_EVENTS,
    FORM_DEPTH,
    FORM_INIT,
    FORM_KEYFRAME,
    FORM_NORMAL,
    FORM_POSE,
    FORM_REFERENCE,
    FORM_SPEC,
    FREE_INIT_FILTERS,
    FUSE_MODES,
    GUIDE_FORM,
    JOB_STATES,
    MODEL_FAMILIES,
    MOTION_LORAS,
    PROMPT_WEIGHTINGS,
    PROTOCOL_VERSION,
    SCHEDULERS,
    WINDOW_MODES,
    frame_filename,
)
from .windows import context_windows

__all__ = [
    "LIMITS",
    "camera_path_errors",
    "CAMERACTRL_GUIDANCE",
    "CAMERACTRL_MAX_FRAMES",
    "CAMERA_DIRECTIONS",
    "CAMERA_MATCH_DEFAULTS",
    "CAMERA_MOTION_MODES",
    "CONTROL_KINDS",
    "CameraCtrlSpec",
    "ContextSpec",
    "ControlSpec",
    "DEFAULT_PORT",
    "EVENT_TYPES",
    "FINAL_EVENTS",
    "FORM_DEPTH",
    "FORM_INIT",
    "FORM_KEYFRAME",
    "FORM_NORMAL",
    "FORM_POSE",
    "FORM_REFERENCE",
    "FORM_SPEC",
    "FREE_INIT_FILTERS",
    "FUSE_MODES",
    "FreeInitSpec",
    "GUIDE_FORM",
    "InitSpec",
    "JOB_STATES",
    "JobSpec",
    "MODEL_FAMILIES",
    "MOTION_LORAS",
    "PROMPT_WEIGHTINGS",
    "PROTOCOL_VERSION",
    "PromptKey",
    "ReferenceSpec",
    "SCHEDULERS",
    "SparseCtrlSpec",
    "SpecError",
    "WINDOW_MODES",
    "Weighted",
    "context_windows",
    "format_event",
    "frame_filename",
    "guide_errors",
    "parse_events",
    "parse_spec",
]
