"""Fake AUTOMATIC1111 and ComfyUI installs whose model files are the tiny models in the public formats, laid out
as the two projects lay them out (server/model_layouts.py), under the names artists' files have.

`build(tiny, out)` writes `out/stable-diffusion-webui` (A1111) and `out/ComfyUI_windows_portable/ComfyUI` (the
portable ComfyUI package: the install one folder down) and returns their roots.
"""

from __future__ import annotations

import shutil
from pathlib import Path

A1111_FILES = {  # path in the install -> file of the tiny models
    "models/Stable-diffusion/dreamyToon_v1.safetensors": "sd15.safetensors",  # an LDM single-file checkpoint
    "models/Stable-diffusion/dreamyToon_v1.vae.pt": "vae/tiny-ft-mse-extracted.pt",  # A1111 pairs it with the above
    "models/Lora/inkStyle.safetensors": "lora/style.safetensors",  # kohya lora_unet_*/lora_te_*
    "models/Lora/v2_lora_ZoomIn.ckpt": "v2_lora_ZoomIn.ckpt",  # AnimateDiff's motion LoRA, as A1111 keeps it
    # a motion LoRA under a name of the artist's: told from an image LoRA by its keys
    "models/Lora/camera/orbitMotion.safetensors": "motion_lora/pan_left/diffusion_pytorch_model.safetensors",
    "models/VAE/kl-f8-anime2.safetensors": "vae/tiny-ft-mse.safetensors",
    "models/ControlNet/control_v11f1p_sd15_depth.pth": "control_v11f1p_sd15_depth.pth",
    "models/ControlNet/v3_sd15_sparsectrl_rgb.ckpt": "v3_sd15_sparsectrl_rgb.ckpt",
    "models/ControlNet/ip-adapter_sd15.safetensors": "ip-adapter_tiny.safetensors",
    "extensions/sd-webui-animatediff/model/mm_sd_v15_v2.ckpt": "mm_sd_v15_v2.ckpt",
    "embeddings/EasyNegative.safetensors": "embeddings/EasyNegative.safetensors",
}
COMFYUI_FILES = {
    "models/checkpoints/toonMix.safetensors": "sd15.safetensors",
    "models/checkpoints/dreamyToon_v1.safetensors": "sd15.safetensors",  # the A1111 root's name too
    "models/loras/watercolor.safetensors": "lora/style.safetensors",
    "custom_nodes/ComfyUI-AnimateDiff-Evolved/models/v3_sd15_mm.ckpt": "v3_sd15_mm.ckpt",
    "models/animatediff_motion_lora/v2_lora_PanLeft.ckpt": "v2_lora_PanLeft.ckpt",
    "models/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors": "clip_vision_tiny.safetensors",
    "models/ipadapter/ip-adapter-plus_sd15.safetensors": "ip-adapter-plus_tiny.safetensors",
}


def _copy(tiny: Path, root: Path, files: dict[str, str], markers: tuple[str, ...]) -> Path:
    for marker in markers:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("")
    for dest, source in files.items():
        (root / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny / source, root / dest)
    return root


def build(tiny, out) -> tuple[Path, Path]:
    """(the A1111 install, the ComfyUI package's outer folder)."""
    tiny, out = Path(tiny), Path(out)
    a1111 = _copy(tiny, out / "stable-diffusion-webui", A1111_FILES, ("webui.py", "webui-user.bat"))
    comfy = out / "ComfyUI_windows_portable"
    _copy(tiny, comfy / "ComfyUI", COMFYUI_FILES, ("main.py", "folder_paths.py"))
    return a1111, comfy
