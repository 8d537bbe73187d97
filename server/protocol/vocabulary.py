"""The vocabulary client and server share: protocol version, port, names of kinds, modes, events and form fields."""

from __future__ import annotations

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
# GET /models "family" of a local model file, as server/loaders/family.py reads it from the file's header; the
# server runs "sd15" (and files of unknown family); the others are refused before anything loads.
MODEL_FAMILIES = {"sd15": "SD1.5", "sd2": "SD2", "sdxl": "SDXL", "sd3": "SD3", "flux": "Flux", "sd3_flux": "SD3/Flux"}
SCHEDULERS = ("ddim", "euler", "dpmpp_2m", "lcm", "euler_trailing")
CAMERA_MOTION_MODES = ("manual", "auto", "cameractrl")
# CameraCtrl's pose encoder has a temporal position table of 16 (the original's pose_encoder_kwargs
# temporal_position_encoding_max_len: 16; its motion module's is 32): it sees at most 16 frames at once
CAMERACTRL_MAX_FRAMES = 16
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
FORM_REFERENCE = "reference"  # one image per spec.references entry, in that order (IP-Adapter image references)
FORM_INIT = "init"  # with spec.init: one image per frame, in frame order, that denoising starts from (video-to-video)
# The one vocabulary of guides: ControlNet kind (CONTROL_KINDS) -> the form field that carries its guide. The
# openpose ControlNet's guide travels as keypoints (one pose JSON file) that the server draws.
GUIDE_FORM = {"depth": FORM_DEPTH, "normal": FORM_NORMAL, "openpose": FORM_POSE}
FUSE_MODES = ("pyramid", "flat")
WINDOW_MODES = ("temporal", "unet")
# FreeInit's low-pass filters (the FreeInit paper's and diffusers' names)
FREE_INIT_FILTERS = ("butterworth", "gaussian", "ideal", "box")
# How prompt weights like (word:1.2) are read and applied (README "Prompts"): A1111's parser and "Original"
# emphasis, or ComfyUI's parser and its lerp from the empty prompt (ComfyUI_ADV_CLIP_emb's names, lower case)
PROMPT_WEIGHTINGS = ("a1111", "comfy")


def frame_filename(index: int) -> str:
    """The file of frame `index` (0-based, as in the spec and the events): numbered from 1, frame_0001.png, so that
    Blender reads the files as an image sequence starting at 1. The server and the add-on both name frames here."""
    return f"frame_{index + 1:04d}.png"
