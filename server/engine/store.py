"""Which models are loaded: the store loads each on first use and keeps it."""

from __future__ import annotations

import gc
import os
import threading

from ..loaders import ModelConfig


class ModelStore:
    """Loads models on first use and keeps them: a second job with the same models loads nothing.

    One assembled pipeline (base + motion module) is kept at a time; components stay cached so that switching
    back costs only the assembly. LoRAs are loaded once per pipeline as PEFT adapters; jobs only set weights.
    """

    def __init__(
        self,
        config: ModelConfig,
        device: str | None = None,
        dtype: str | None = None,
        motion_norm: str = "original",
        low_vram: bool | None = None,
    ):
        """low_vram (default: $MARIONETTE_LOW_VRAM=1): weights stored in float8 and cast layer by layer as they
        compute (diffusers' layerwise casting), ControlNets kept in host memory except while one runs, the VAE
        decoding in slices and tiles. Slower; for GPUs with little memory."""
        import torch  # heavy: imported when the store is made, not when the module is

        from .device import choose
        from .motion_parity import MODES

        if motion_norm not in MODES:
            raise ValueError(f"unknown motion_norm {motion_norm!r}; use one of {', '.join(MODES)}")
        self.config = config
        # "original": normalise as guoyww/AnimateDiff does (engine/motion_parity.py); "diffusers": as diffusers.
        self.motion_norm = motion_norm
        self.device, dtype, self.device_reason = choose(torch, device, dtype)
        self.dtype = getattr(torch, dtype)
        self.low_vram = os.environ.get("MARIONETTE_LOW_VRAM") == "1" if low_vram is None else low_vram
        self._cache: dict[tuple[str, str], object] = {}
        self._pipe_key: tuple[str, str] | None = None
        self._pipe = None
        self._adapters: set[str] = set()
        self._applied: list | None = None  # the (kind, name, weight) list set_loras applied last
        self.lock = threading.RLock()
        self.loads: list[str] = []  # every load, in order: what tests and the manifest read
        self._loaded: tuple[str, ...] = ()

    # --- components -------------------------------------------------------------------------------
    def _component(self, kind: str, name: str):
        key = (kind, name)
        if key not in self._cache:
            from .. import loaders

            entry = self.config.get(kind, name)
            loader = {
                "base": loaders.load_base,
                "motion_module": loaders.load_motion_adapter,
                "controlnet": loaders.load_controlnet,
                "sparsectrl": loaders.load_sparsectrl,
                "camera_control": loaders.load_camera_control,
                "ip_adapter": loaders.load_ip_adapter,
                "image_encoder": loaders.load_image_encoder,
                "vae": loaders.load_vae,
            }[kind]
            # Built in the store's dtype from the start and moved at once: the host never holds a float32 copy,
            # and for an accelerator the host copy lives only while one component loads.
            obj = loader(entry.source, entry.config, weight_name=entry.weight_name, dtype=self.dtype)
            if self.low_vram and kind in ("base", "motion_module"):
                # fp8 storage before the motion UNet is assembled: it shares these very tensors
                _fp8(obj["unet"] if kind == "base" else obj, self.dtype)
            if kind == "base":
                for part in ("unet", "vae", "text_encoder"):
                    obj[part] = obj[part].to(self.device)
            elif kind in ("controlnet", "sparsectrl") and self.low_vram:
                obj = _offloaded(_fp8(obj, self.dtype), self.device).eval()
            else:
                if kind == "camera_control":
                    obj.compute_dtype = self.dtype
                if self.low_vram and kind in ("ip_adapter", "image_encoder", "camera_control"):
                    _fp8(obj, self.dtype)
                obj = obj.to(self.device).eval()
            if kind == "sparsectrl":
                from .motion_parity import apply_motion_norm

                apply_motion_norm(obj, "v3", self.motion_norm)
            self._cache[key] = obj
            self.loads.append(f"{kind}:{name}")
            self._refresh()
        return self._cache[key]

    def controlnet(self, name: str):
        with self.lock:
            return self._component("controlnet", name)

    def sparsectrl(self, name: str):
        with self.lock:
            return self._component("sparsectrl", name)

    def camera_control(self, name: str):
        """A CameraCtrl model (engine/cameractrl.py), on the store's device and dtype."""
        with self.lock:
            return self._component("camera_control", name)

    def ip_adapter(self, name: str):
        """(IP-Adapter, its image encoder) on the store's device and dtype (engine/ip_adapter.py)."""
        with self.lock:
            return self._component("ip_adapter", name), self._component(
                "image_encoder", self.config.get("ip_adapter", name).image_encoder
            )

    def pipeline(self, base: str, motion_module: str, vae: str = ""):
        """The assembled pipeline for a base model and motion module, building it if needed, decoding and encoding
        with the VAE named `vae` (empty: the base's own). Changing only the VAE swaps it: nothing else loads."""
        with self.lock:
            if self._pipe_key != (base, motion_module):
                self._assemble(base, motion_module)
            self._use_vae(self._pipe, base, vae)
            return self._pipe

    def _use_vae(self, pipe, base: str, name: str):
        from ..loaders import CheckpointError
        from ..loaders.vae import check_fits

        own = self._component("base", base)["vae"]
        chosen = own if not name else self._component("vae", name)
        if pipe.vae is chosen:
            return
        if chosen is not own:
            try:
                check_fits(chosen, own, self.config.get("vae", name).source)
            except CheckpointError:
                del self._cache[("vae", name)]  # a refused VAE is not kept
                self._refresh()
                raise
            if self.low_vram:
                chosen.enable_slicing()
                chosen.enable_tiling()
        pipe.register_modules(vae=chosen)

    def _assemble(self, base: str, motion_module: str):
        from .motion_parity import apply_motion_norm, motion_version
        from .pipeline import GuidedAnimateDiffPipeline

        parts = self._component("base", base)
        adapter = self._component("motion_module", motion_module)
        self._drop_pipeline()
        unet = motion_unet(parts["unet"], adapter)
        apply_motion_norm(unet, motion_version(adapter.config), self.motion_norm)
        # Inference only. Frozen weights also make a LoRA at weight 0 bit-identical to none: torch picks
        # other matmul paths for weights that require grad, and loading a LoRA freezes the base weights.
        unet.requires_grad_(False)
        if self.low_vram:
            _fp8(unet, self.dtype)
            parts["vae"].enable_slicing()
            parts["vae"].enable_tiling()
        pipe = GuidedAnimateDiffPipeline(
            vae=parts["vae"],
            text_encoder=parts["text_encoder"],
            tokenizer=parts["tokenizer"],
            unet=unet,
            motion_adapter=adapter,
            scheduler=parts["scheduler"],
        )
        # Every part is already in the store's dtype; casting the pipeline again would turn the UNet's float8
        # storage (--low-vram) back into the compute dtype until each layer's first run.
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        # Each job's scheduler is made from the base model's own settings, never from the last job's scheduler
        pipe.base_scheduler_config = dict(parts["scheduler"].config)
        self._pipe, self._pipe_key = pipe, (base, motion_module)
        self.loads.append(f"pipeline:{base}+{motion_module}")
        self._refresh()

    def set_motion_norm(self, mode: str):
        """Switch the loaded and future motion UNets and SparseCtrl models to `mode` ("original"/"diffusers")."""
        from .motion_parity import MODES, apply_motion_norm, motion_norm_of

        if mode not in MODES:
            raise ValueError(f"unknown motion_norm {mode!r}; use one of {', '.join(MODES)}")
        with self.lock:
            self.motion_norm = mode
            if self._pipe is not None:
                apply_motion_norm(self._pipe.unet, motion_norm_of(self._pipe.unet)[0], mode)
            for (kind, _), obj in self._cache.items():
                if kind == "sparsectrl":
                    apply_motion_norm(obj, "v3", mode)

    def set_loras(self, pipe, loras: list[tuple[str, str, float]]):
        """Activate exactly these (kind, name, weight) LoRAs on the pipeline, loading any not loaded yet. A weight
        may be a [text encoder, UNet] pair."""
        from .. import loaders

        with self.lock:
            if list(loras) == self._applied:
                return  # per-window schedules ask again for every window and step
            names, weights = [], []
            for kind, name, weight in loras:
                adapter = f"{kind}__{name}"
                if adapter not in self._adapters:
                    entry = self.config.get(kind, name)
                    if kind == "motion_lora":
                        weights_in = loaders.motion_lora_state_dict(entry.source)
                    else:
                        weights_in = loaders.image_lora_source(entry.source)
                    pipe.load_lora_weights(weights_in, adapter_name=adapter)
                    if self.low_vram:
                        _lora_in_compute_dtype(pipe.unet, self.dtype)
                    self._adapters.add(adapter)
                    self.loads.append(f"{kind}:{name}")
                    self._refresh()
                names.append(adapter)
                # [text encoder, UNet]: A1111's <lora:NAME:TE:UNET>, each part at its own weight
                pair = isinstance(weight, (list, tuple))
                weights.append({"text_encoder": weight[0], "unet": weight[1]} if pair else weight)
            self._applied = list(loras)
            if not self._adapters:
                return
            if names:
                pipe.enable_lora()
                pipe.set_adapters(names, adapter_weights=weights)
            else:
                pipe.disable_lora()

    # --- introspection and release ------------------------------------------------------------------
    def loaded(self) -> list[str]:
        """What is in memory now. Lock-free (a snapshot), so /health answers while a model loads."""
        return list(self._loaded)

    def _refresh(self):
        items = [f"{k}:{n}" for k, n in self._cache]
        if self._pipe_key:
            items.append(f"pipeline:{self._pipe_key[0]}+{self._pipe_key[1]}")
        self._loaded = tuple(items + sorted(a.replace("__", ":", 1) for a in self._adapters))

    def _drop_pipeline(self):
        if self._pipe is not None and self._adapters:
            self._pipe.unload_lora_weights()  # the text encoder is shared with the cache: strip its adapters
        self._pipe, self._pipe_key = None, None
        self._adapters.clear()
        self._applied = None
        self._refresh()

    def release(self):
        """Unload every model and give the accelerator's memory back."""
        import torch

        with self.lock:
            self._drop_pipeline()
            self._cache.clear()
            self._refresh()
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def motion_unet(unet, adapter):
    """The UNetMotionModel of a 2D UNet and a motion adapter that shares their weight tensors: built on the meta
    device (no random initialisation) and given the very parameters of both, so assembling one costs no memory and
    no copy, whatever the dtype or device. `UNetMotionModel.from_unet2d` would build a float32 model and copy every
    weight into it. Nothing may change these weights in place (LoRAs are kept as separate adapter layers)."""
    from accelerate import init_empty_weights
    from diffusers.models import UNetMotionModel

    if adapter.config.get("conv_in_channels"):
        raise ValueError("PIA motion adapters (conv_in_channels) are not supported")
    with init_empty_weights():
        model = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
    weights = {**unet.state_dict(keep_vars=True), **adapter.state_dict(keep_vars=True)}
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    if missing or unexpected:
        raise ValueError(f"motion adapter does not fit the UNet: missing {missing[:3]}, unexpected {unexpected[:3]}")
    still_meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if still_meta:
        raise ValueError(f"motion UNet weights left unset: {still_meta[:3]}")
    return model.to(unet.device).eval()


def _fp8(model, compute_dtype):
    """Weights stored in float8 (e4m3), each layer's cast to `compute_dtype` while it runs; norms (and the patch and
    position embeddings of diffusers models) stay as they are. Plain torch modules (IP-Adapters, CameraCtrl) and
    transformers models (the CLIP image encoder) take the same hooks as diffusers models."""
    import torch
    from diffusers.hooks import apply_layerwise_casting

    if hasattr(model, "enable_layerwise_casting"):
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
    else:
        apply_layerwise_casting(model, storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
    return model


def _lora_in_compute_dtype(model, dtype):
    """PEFT gives a LoRA layer its base layer's dtype, float8 under --low-vram, which no layer computes in: keep
    the (small) LoRA weights in the compute dtype."""
    for name, param in model.named_parameters():
        if "lora_" in name and param.dtype != dtype:
            param.data = param.data.to(dtype)


def _offloaded(model, device):
    """`model` kept in host memory and moved to `device` only for the length of each of its calls."""

    def to_device(module, args, kwargs):
        module.to(device)

    def back(module, args, kwargs, output):
        module.to("cpu")
        return output

    model.to("cpu")
    if str(device) != "cpu":
        model.register_forward_pre_hook(to_device, with_kwargs=True)
        model.register_forward_hook(back, with_kwargs=True)
    return model
