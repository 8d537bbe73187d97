"""The full-size pipeline task of tests/test_fullsize.py (run by tests/fullsize_checks.py in a child process; the
GPU bench passes its own size): the public placeholder files through the server's ModelStore and one generation."""

from __future__ import annotations

import re
import time
from pathlib import Path

import torch
from fullsize import (
    MOTION_FILES,
    drop,
    write_controlnet_folder,
    write_controlnet_original,
    write_domain_adapter,
    write_motion_lora,
    write_motion_module,
    write_sd15,
    write_sparsectrl_rgb,
)


def task_pipeline(
    root: Path,
    variant: str,
    dtype: str = "bfloat16",
    device: str = "cpu",
    frames: int = 2,
    size: int = 64,
    steps: int = 1,
) -> dict:
    """The full-size pipeline through the server's ModelStore (a models.toml naming the public files), one
    denoising step at 64x64 with 2 frames by default (a GPU bench passes device="cuda", dtype="float16", frames=16,
    size=512, steps=25). v2: SD1.5 + mm_sd_v15_v2 + ControlNet depth (.pth) + v2_lora_ZoomIn;
    v3: SD1.5 + v3_sd15_mm + SparseCtrl RGB + ControlNet openpose (hub folder) + the v3 domain adapter LoRA."""
    from server.engine.conditioning import Control, Keyframes
    from server.engine.schedulers import make_scheduler
    from server.engine.store import ModelStore
    from server.loaders import ModelConfig

    times = {}
    t0 = time.perf_counter()
    files = [write_sd15(root / "v1-5-pruned-emaonly.safetensors")]
    toml = ["[base.sd15]", 'source = "v1-5-pruned-emaonly.safetensors"']
    if variant == "v2":
        files += [
            write_motion_module(root / MOTION_FILES["v2"], "v2"),
            write_controlnet_original(root / "control_v11f1p_sd15_depth.pth"),
            write_motion_lora(root / "v2_lora_ZoomIn.ckpt"),
        ]
        toml += [
            "[motion_module.v2]",
            'source = "mm_sd_v15_v2.ckpt"',
            "[controlnet.depth]",
            'source = "control_v11f1p_sd15_depth.pth"',
            "[motion_lora.zoom_in]",
            'source = "v2_lora_ZoomIn.ckpt"',
        ]
        motion, controlnet, loras = "v2", "depth", [("motion_lora", "zoom_in", 1.0)]
    else:
        files += [
            write_motion_module(root / MOTION_FILES["v3"], "v3"),
            write_sparsectrl_rgb(root / "v3_sd15_sparsectrl_rgb.ckpt"),
            write_controlnet_folder(root / "control_v11p_sd15_openpose", "control_v11p_sd15_openpose"),
            write_domain_adapter(root / "v3_sd15_adapter.ckpt"),
        ]
        toml += [
            "[motion_module.v3]",
            'source = "v3_sd15_mm.ckpt"',
            "[controlnet.openpose]",
            'source = "control_v11p_sd15_openpose"',
            "[sparsectrl.rgb]",
            'source = "v3_sd15_sparsectrl_rgb.ckpt"',
            "[lora.v3_adapter]",
            'source = "v3_sd15_adapter.ckpt"',
        ]
        motion, controlnet, loras = "v3", "openpose", [("lora", "v3_adapter", 1.0)]
    (root / "models.toml").write_text("\n".join(toml) + "\n")
    disk = sum(f["bytes"] for f in files)
    times["write_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    store = ModelStore(ModelConfig.load(root / "models.toml"), device=device, dtype=dtype)
    pipe = store.pipeline("sd15", motion)  # built in the store's dtype, the motion UNet sharing its weights
    store.set_loras(pipe, loras)
    guides = torch.rand(frames, 3, size, size, generator=torch.Generator().manual_seed(1))
    control = Control(store.controlnet(controlnet), guides)
    keyframes = None
    if variant == "v3":
        keyframes = Keyframes(store.sparsectrl("rgb"), torch.rand(1, 3, size, size), indices=[0])
    pipe.scheduler = make_scheduler("ddim", pipe.scheduler.config)
    times["load_s"] = time.perf_counter() - t0
    for f in files:  # everything is in memory now
        drop(Path(f["path"]))

    adapter_name = f"{loras[0][0]}__{loras[0][1]}"
    wrapped = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and adapter_name in m.lora_A]
    wrapped_te = [n for n, m in pipe.text_encoder.named_modules() if hasattr(m, "lora_A")]

    previews = []
    t0 = time.perf_counter()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    video = pipe.generate(
        prompt="a wooden marionette dancing",
        negative_prompt="blurry",
        num_frames=frames,
        height=size,
        width=size,
        steps=steps,
        guidance=7.5,
        generator=torch.Generator().manual_seed(0),
        controls=[control],
        keyframes=keyframes,
        on_step=lambda i, n, x0: previews.append((i, n, x0.float())),
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    times["generate_s"] = time.perf_counter() - t0
    return {
        "variant": variant,
        "disk_bytes": disk,
        "loads": store.loads,
        "frames": [list(video.shape), str(video.dtype)],
        "gpu_peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None,
        "steps": [(i, n) for i, n, _ in previews],
        "x0_finite": all(bool(torch.isfinite(x0).all()) for _, _, x0 in previews),
        "x0_shape": list(previews[-1][2].shape) if previews else None,
        "unet": [
            type(pipe.unet).__name__,
            sum(p.numel() for n, p in pipe.unet.named_parameters() if "lora_" not in n),
            str(pipe.unet.dtype),
        ],
        "lora_params": sum(p.numel() for n, p in pipe.unet.named_parameters() if "lora_" in n),
        "motion_modules": len([n for n, _ in pipe.unet.named_modules() if re.fullmatch(r".*motion_modules\.\d+", n)]),
        "lora_wrapped": len(wrapped),
        "lora_wrapped_motion": len([n for n in wrapped if "motion_modules" in n]),
        "lora_wrapped_text_encoder": len(wrapped_te),
        "controlnet_dtype": str(control.model.dtype),
        "times": {k: round(v, 1) for k, v in times.items()},
    }
