"""The job spec as typed records: what a client sends in the "spec" form field of POST /jobs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .vocabulary import PROTOCOL_VERSION


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
    # One motion scale per window (protocol.context_windows gives the windows), fused like the windows' outputs;
    # empty: the job's motion_scale in every window.
    motion_scales: list[float] = field(default_factory=list)


@dataclass
class ReferenceSpec:
    """An image reference (IP-Adapter): the uploaded image (form field "reference", in list order) whose look the
    frames first..last take, at `weight`, during the steps start..end (fractions, like a ControlNet's)."""

    model: str = "ip_adapter"  # ip_adapter name in the server's model config
    weight: float = 1.0
    start: float = 0.0
    end: float = 1.0
    first: int = 0  # 0-based frame indices, inclusive
    last: int | None = None  # None: to the clip's last frame


@dataclass
class InitSpec:
    """Video-to-video: denoising starts from the uploaded frames (form field "init", one image per frame)."""

    strength: float = 0.6  # 0: the frames come back as sent (through the VAE); 1: ignored, as text-to-video


@dataclass
class FreeInitSpec:
    """FreeInit: the whole denoising runs `iterations` times, each restarting from the previous result's
    low-frequency part (spatio-temporal low-pass) with fresh high-frequency noise. Costs `iterations`× the time."""

    iterations: int = 3  # 1: as without FreeInit
    filter: str = "butterworth"  # one of FREE_INIT_FILTERS
    spatial_cutoff: float = 0.25  # normalised stop frequency of the low-pass, 0..1
    temporal_cutoff: float = 0.25


@dataclass
class PromptKey:
    frame: int  # 0-based frame index where this prompt holds fully
    prompt: str


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
    references: list[ReferenceSpec] = field(default_factory=list)
    init: InitSpec | None = None
    free_init: FreeInitSpec | None = None
    motion_scale: float = 1.0  # x + s·(module(x) − x) on every motion module (ADE's "effect"); 1: as trained
    vae: str = ""  # vae name in the server's model config; empty: the base checkpoint's own VAE
    clip_skip: int = 1  # A1111's "Clip skip": 1 the text encoder's last layer, 2 the one before it (anime models)
    prompt_weighting: str = "a1111"  # PROMPT_WEIGHTINGS: whose prompt syntax and weighting the prompts follow
    version: int = PROTOCOL_VERSION

    def to_dict(self) -> dict:
        """The spec as the JSON object sent on the wire (parse_spec reads it back to an equal spec)."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
