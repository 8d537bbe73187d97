"""What a job spec resolves to before anything runs: models, ControlNets, LoRA weights, the camera match.

`plan` returns a typed `Plan` that the runner uses as it is; `Plan.to_dict()` is what POST /plan answers and the
manifest keeps.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

from ..camera import match, plot_png, scene_scale, with_overrides
from ..loaders import file_identity, motion_adapter_info
from ..protocol import CAMERACTRL_GUIDANCE, JobSpec
from .init_video import kept_steps
from .prompt_syntax import EMBEDDING_REF, resolve_embedding
from .prompt_tags import job_loras
from .store import ModelStore
from .windows import context_windows


@dataclass
class Plan:
    base: dict  # identity of the base model (source, sha256 of local files)
    motion_module: dict  # identity + version + max_frames
    controlnets: list[dict]
    sparsectrl: dict | None
    motion_loras: list[dict]  # what the job applies to the whole clip (the camera's with "auto")
    loras: list[dict]
    camera_motion: str
    scheduler: str
    notes: list[str] = field(default_factory=list)
    camera: dict | None = None  # the camera match (camera.match) with overrides applied in "auto"
    windows: list[list[int]] | None = None  # the job's context windows (job frame indices), when it has them
    cameractrl: dict | None = None  # with camera_motion "cameractrl": model, scale, per-window poses (cameractrl_plan)
    references: list[dict] = field(default_factory=list)  # IP-Adapter image references (references_plan)
    sampling: dict = field(default_factory=dict)  # denoising steps, FreeInit's cost, motion scales (sampling_plan)
    vae: dict | None = None  # identity of the separate VAE; None: the base's own decodes
    embeddings: list[dict] = field(default_factory=list)  # identities of the embeddings the prompts name
    prompt_weighting: str = "a1111"  # whose prompt syntax and weighting the prompts follow (README "Prompts")

    def window_motion_loras(self) -> list[list[dict]] | None:
        """Per context window, the motion LoRAs it applies: with "auto" and context windows the camera was matched
        on exactly these windows, so window w takes the camera's window w. None when the clip's weights hold."""
        if self.windows is None or self.camera is None or self.camera_motion != "auto":
            return None
        return [w["motion_loras"] for w in self.camera["windows"]]

    def plot_png(self) -> bytes | None:
        return None if self.camera is None else plot_png(self.camera["components"], self.camera["windows"])

    def to_dict(self, plot: bool = True) -> dict:
        camera = self.camera
        out = {
            "base": self.base,
            "motion_module": self.motion_module,
            "vae": self.vae,
            "embeddings": self.embeddings,
            "prompt_weighting": self.prompt_weighting,
            "controlnets": self.controlnets,
            "sparsectrl": self.sparsectrl,
            "motion_loras": self.motion_loras,
            "loras": self.loras,
            "camera_motion": self.camera_motion,
            "cameractrl": self.cameractrl,
            "references": self.references,
            # with a camera path: what it matched (before manual overrides), the schedule, the per-pair components
            # and a base64 PNG plot of both (README "Camera matching")
            "matched_motion_loras": None if camera is None else camera["motion_loras"],
            "windows": None if camera is None else camera["windows"],
            "components": None if camera is None else camera["components"],
            "camera_matching": None if camera is None else {k: camera[k] for k in ("rates", "settings")},
            "scheduler": self.scheduler,
            "sampling": self.sampling,
            "notes": self.notes,
        }
        if plot:
            png = self.plot_png()
            out["plot_png"] = None if png is None else base64.b64encode(png).decode()
        return out


def plan(spec: JobSpec, store: ModelStore, wait: bool = True) -> Plan:
    """What a spec resolves to, without generating: models, ControlNets, LoRA weights and notes. With `wait` false,
    file hashes not computed yet are left pending (`model_identities` completes them later)."""
    config = store.config
    module = config.get("motion_module", spec.motion_module)
    info = motion_adapter_info(module.source, module.config)
    notes = []
    motion_loras, camera = motion_loras_for(spec)
    if (motion_loras or spec.camera_motion == "auto") and info["version"] != "v2":
        notes.append(
            f"motion LoRAs act as intended only on the v2 motion module; {spec.motion_module!r} is "
            f"{info['version']}: expect little effect"
        )
    if camera is not None:
        notes += camera["notes"]
    if spec.camera_motion == "auto" and spec.context is not None and spec.context.mode == "temporal":
        notes.append(
            'camera_motion "auto" gives each context window its own motion LoRA weights, which cannot differ '
            'inside one prediction: the windows run in context mode "unet" (the whole UNet per window)'
        )
    cameractrl = cameractrl_plan(spec, store, wait)
    if cameractrl is not None:
        notes += cameractrl.pop("notes")
        if info["version"] not in ("v3", "unknown"):
            notes.append(
                f"CameraCtrl was trained with the v3 motion module; {spec.motion_module!r} is {info['version']}"
            )
    if spec.sparsectrl and info["version"] not in ("v3", "unknown"):
        notes.append(f"SparseCtrl was trained with the v3 motion module; {spec.motion_module!r} is {info['version']}")
    return Plan(
        base=file_identity(config.get("base", spec.base), wait),
        vae=file_identity(config.get("vae", spec.vae), wait) if spec.vae else None,
        motion_module={**file_identity(module, wait), **info},
        controlnets=[
            {
                "kind": c.kind,
                "model": c.model,
                "weight": c.weight,
                "start": c.start,
                "end": c.end,
                "source": config.get("controlnet", c.model).source,
            }
            for c in spec.controlnets
        ],
        sparsectrl=None
        if spec.sparsectrl is None
        else {
            "model": spec.sparsectrl.model,
            "keyframes": spec.sparsectrl.keyframes,
            "weight": spec.sparsectrl.weight,
            "source": config.get("sparsectrl", spec.sparsectrl.model).source,
        },
        motion_loras=motion_loras,
        loras=job_loras(spec),  # the spec's and those the prompts' <lora:...> tags name
        camera_motion=spec.camera_motion,
        scheduler=spec.scheduler,
        notes=notes,
        camera=camera,
        windows=job_windows(spec),
        cameractrl=cameractrl,
        references=references_plan(spec, store, wait),
        sampling=sampling_plan(spec, notes),
        embeddings=[file_identity(config.get("embedding", n), wait) for n in embeddings_named(spec, config)],
        prompt_weighting=spec.prompt_weighting,
    )


def embeddings_named(spec: JobSpec, config) -> list[str]:
    """The configured embeddings the prompts name, in config order: by `embedding:NAME`, or by a name the text
    holds (letter case and spaces aside). The encoder matches names in tokens, so a name inside a longer word is
    listed here and not used; one the encoder uses is never left out (a batch redoes what a changed file shapes)."""
    texts = [spec.prompt, spec.negative_prompt, *(k.prompt for k in spec.prompts)]
    names = config.names("embedding")
    flat = [re.sub(r"\s+", "", text.lower()) for text in texts]
    referenced = {resolve_embedding(m.group(1), names) for text in texts for m in EMBEDDING_REF.finditer(text)}
    return [n for n in names if n in referenced or any(re.sub(r"\s+", "", n.lower()) in t for t in flat)]


def references_plan(spec: JobSpec, store: ModelStore, wait: bool = True) -> list[dict]:
    """Per image reference: its IP-Adapter and image encoder (identities) and its schedule; the runner adds the
    sha256 of the image it was sent."""
    out = []
    for r in spec.references:
        adapter = store.config.get("ip_adapter", r.model)
        encoder = store.config.get("image_encoder", adapter.image_encoder)
        last = spec.frames - 1 if r.last is None else r.last
        out.append(
            {
                "model": r.model,
                "weight": r.weight,
                "start": r.start,
                "end": r.end,
                "first": r.first,
                "last": last,
                "ip_adapter": file_identity(adapter, wait),
                "image_encoder": file_identity(encoder, wait),
            }
        )
    return out


def sampling_plan(spec: JobSpec, notes: list[str]) -> dict:
    """How many denoising steps the job runs (video-to-video keeps int(steps · strength) of them; FreeInit runs them
    `iterations` times, its cost multiplier) and the motion scale of each context window."""
    strength = 1.0 if spec.init is None else spec.init.strength
    steps = kept_steps(spec.steps, strength)
    iterations = 1 if spec.free_init is None or steps == 0 else spec.free_init.iterations
    if spec.init is not None and strength == 1.0:
        notes.append("init strength 1 ignores the init frames: the job is text-to-video with its seed")
    elif spec.init is not None and steps == 0:
        notes.append(
            f"init strength {strength:g} keeps no step of {spec.steps}: the init frames come back through the VAE"
        )
    if spec.free_init is not None and iterations == 1 < spec.free_init.iterations:
        notes.append("FreeInit has no step to repeat: it is skipped")
    windows = job_windows(spec) or [list(range(spec.frames))]
    scales = spec.context.motion_scales if spec.context is not None and spec.context.motion_scales else None
    if scales and spec.motion_scale != 1.0:
        notes.append(
            f"context.motion_scales gives each window its motion scale: the job's motion_scale "
            f"{spec.motion_scale:g} is not used"
        )
    return {
        "steps": spec.steps,
        "denoising_steps": steps,
        "free_init_iterations": iterations,
        "total_steps": steps * iterations,  # what the step events count to
        "cost": iterations,  # × the time of one denoising
        "motion_scales": scales or [spec.motion_scale] * len(windows),
    }


def job_windows(spec: JobSpec) -> list[list[int]] | None:
    """The job's context windows (the ones the pipeline runs), or None for a single pass."""
    c = spec.context
    return None if c is None else context_windows(spec.frames, c.length, c.overlap, c.loop)


def cameractrl_plan(spec: JobSpec, store: ModelStore, wait: bool = True) -> dict | None:
    """With camera_motion "cameractrl": the model, its scale, and per context window the frames whose poses are
    taken relative to the window's first frame and the scene depth their translations are measured in."""
    if spec.camera_motion != "cameractrl":
        return None
    entry = store.config.get("camera_control", spec.cameractrl.model)
    windows = [
        {"first": idx[0], "frames": idx, "scene_scale": scene_scale(spec.camera, idx)}
        for idx in job_windows(spec) or [list(range(spec.frames))]
    ]
    notes = []
    if any(w["scene_scale"] is None for w in windows):
        notes.append(
            "no frame of the camera path has a scene depth (nothing in view?): CameraCtrl gets the "
            "camera's translations in scene units, not normalised by the scene's depth"
        )
    if spec.guidance != CAMERACTRL_GUIDANCE:
        notes.append(
            f"CameraCtrl's authors sample with guidance {CAMERACTRL_GUIDANCE:g} (their inference.py); "
            f"this job uses {spec.guidance:g}"
        )
    return {
        **file_identity(entry, wait),
        "model": entry.name,
        "scale": spec.cameractrl.scale,
        "authors_guidance": CAMERACTRL_GUIDANCE,
        "windows": windows,
        "notes": notes,
    }


def motion_loras_for(spec: JobSpec) -> tuple[list[dict], dict | None]:
    """The motion LoRA weights a job applies, and the camera match when the spec has a camera path.

    The camera is matched on the job's context windows when it has them. "auto": the camera's clip weights,
    manual entries overriding per name (also in every window); "manual": the spec's own weights (the camera match
    is still returned, for display)."""
    manual = [{"name": m.name, "weight": m.weight} for m in spec.motion_loras]
    if spec.camera is None:
        return manual, None
    windows = job_windows(spec)
    if windows is None:
        camera = match(spec.camera)
    else:
        camera = match(spec.camera, window=spec.context.length, overlap=spec.context.overlap, windows=windows)
    if spec.camera_motion != "auto":
        return manual, camera
    for w in camera["windows"]:
        w["motion_loras"] = with_overrides(w["motion_loras"], spec.motion_loras)
    return with_overrides(camera["motion_loras"], spec.motion_loras), camera


def motion_lora_names(spec: JobSpec) -> set[str]:
    """Every motion LoRA a job may load: the clip's and, with a per-window schedule, each window's."""
    clip, camera = motion_loras_for(spec)
    names = {m["name"] for m in clip}
    if camera is not None and spec.camera_motion == "auto" and spec.context is not None:
        names |= {m["name"] for w in camera["windows"] for m in w["motion_loras"]}
    return names


def model_identities(spec: JobSpec, store: ModelStore) -> dict:
    """The identities of the base model, the motion module, the separate VAE and CameraCtrl (those used) with every
    file hash, waiting for any still computed: what a job records when it finishes."""
    out = {
        "base": file_identity(store.config.get("base", spec.base)),
        "motion_module": file_identity(store.config.get("motion_module", spec.motion_module)),
    }
    if spec.vae:
        out["vae"] = file_identity(store.config.get("vae", spec.vae))
    if spec.camera_motion == "cameractrl":
        out["cameractrl"] = file_identity(store.config.get("camera_control", spec.cameractrl.model))
    return out
