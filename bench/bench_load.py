"""Cold start and host memory while loading: SD1.5 + a motion module + 3 ControlNets from full-size single files in
the public layouts (placeholder weights, tests/fullsize.py), through Marionette's ModelStore and through plain
diffusers (`from_single_file` + `MotionAdapter` + `AnimateDiffControlNetPipeline.from_pipe`), in the same run; and
Marionette with CameraCtrl, an IP-Adapter plus and its ViT-H/14 image encoder loaded too
(tests/support/fullsize_adapters.py; plain diffusers has no CameraCtrl, so that row has no diffusers twin).

Each side runs in its own child process, so that its peak resident memory (ru_maxrss) is its own, measured after
every weight has been read once (memory-mapped weights count only once resident); the files are read once
beforehand so that both find them in the page cache. Cold start: from the first load call to the first
denoising step (the first call of the UNet or a ControlNet), at a token size so that the step itself costs nothing;
Marionette's side includes what a job does first: its plan and the start of the file hashes (background thread).

    .venv/bin/python bench/bench_load.py                          # float16, full size, ~5.5 GB of files
    .venv/bin/python bench/bench_load.py --tiny                   # the tiny models: checks the script only
    .venv/bin/python bench/bench_load.py --sides adapters         # only Marionette with the three adapters
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CONTROLNETS = ("depth", "normalbae", "openpose")


class FirstStep(Exception):
    """Raised by a forward pre-hook on the first call of the UNet or a ControlNet: the cold start ends there."""


def until_first_step(generate, *models) -> None:
    """Call `generate()` and stop it where the first of `models` (the UNet, the ControlNets) is first called."""

    def hook(module, args, kwargs):
        raise FirstStep

    hooks = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in models]
    try:
        generate()
    except FirstStep:
        pass
    finally:
        for h in hooks:
            h.remove()


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def touch(*models) -> None:
    """Read every weight once. Memory-mapped weights are resident only once read: without this, weights a first
    step has not used yet (most of the UNet) would not count, and the peak would flatter the lazy loader."""
    for m in models:
        for t in list(m.parameters()) + list(m.buffers()):
            if t.numel():
                t.reshape(-1)[:: max(1, 4096 // t.element_size())].sum()  # one element per 4 KiB page


def rss_gb() -> float:
    """Resident memory now (the libraries imported, nothing loaded yet: the baseline)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 2**20


def weight_bytes(*models, itemsize=2) -> int:
    """Bytes of the models' parameters and buffers at `itemsize` bytes per element (2: fp16)."""
    return sum(t.numel() * itemsize for m in models for t in list(m.parameters()) + list(m.buffers()))


def write_files(root: Path, tiny_models: bool) -> dict:
    """The files and a models.toml naming them; returns {"toml", "sd15", "motion", "controlnets", "configs"}."""
    root.mkdir(parents=True, exist_ok=True)
    if tiny_models:
        from tests.support import tiny_models as tiny

        toml = tiny.build(root / "tiny")
        base = root / "tiny"
        files = {
            "sd15": base / "sd15.safetensors",
            "motion": base / "mm_sd_v15_v2.ckpt",
            "controlnets": [base / "control_v11f1p_sd15_depth.pth"] * 3,
            "cameractrl": _tiny_cameractrl(base / "cameractrl_tiny.ckpt"),
            "ip_adapter": base / "ip-adapter-plus_tiny.safetensors",
            "image_encoder": base / "image_encoder",
            "configs": {
                "sd15": base / "sd15",
                "motion": base / "motion_v2",
                "controlnet": base / "controlnet" / "depth",
            },
        }
    else:
        import fullsize

        from server.loaders import CONFIGS

        files = {
            "sd15": root / "v1-5-pruned-emaonly.safetensors",
            "motion": root / "mm_sd_v15_v2.ckpt",
            "controlnets": [root / f"{fullsize.CONTROLNETS[n]}.pth" for n in CONTROLNETS],
            "configs": {
                "sd15": CONFIGS / "sd15",
                "motion": CONFIGS / "motion_adapter_v2",
                "controlnet": CONFIGS / "controlnet_sd15",
            },
        }
        if not files["sd15"].exists():
            fullsize.write_sd15(files["sd15"])
        if not files["motion"].exists():
            fullsize.write_motion_module(files["motion"], "v2")
        for path in files["controlnets"]:
            if not path.exists():
                fullsize.write_controlnet_original(path)
        from tests.support import fullsize_adapters

        files.update(fullsize_adapters.write_all(root))
    # The shipped SD1.5 config folder, CLIP tokenizer included: both sides use it.
    pipeline_config = root / "sd15_config"
    if not pipeline_config.exists():
        shutil.copytree(files["configs"]["sd15"], pipeline_config)
    files["pipeline_config"] = pipeline_config
    lines = [
        "[base.sd15]",
        f'source = "{files["sd15"]}"',
        f'config = "{pipeline_config}"',
        "[motion_module.v2]",
        f'source = "{files["motion"]}"',
        f'config = "{files["configs"]["motion"]}"',
    ]
    for name, path in zip(CONTROLNETS, files["controlnets"]):
        lines += [f"[controlnet.{name}]", f'source = "{path}"', f'config = "{files["configs"]["controlnet"]}"']
    lines += [
        "[camera_control.cameractrl]",
        f'source = "{files["cameractrl"]}"',
        "[image_encoder.vit_h]",
        f'source = "{files["image_encoder"]}"',
        "[ip_adapter.plus]",
        f'source = "{files["ip_adapter"]}"',
        'image_encoder = "vit_h"',
    ]
    toml = root / "bench_load.toml"
    toml.write_text("\n".join(lines) + "\n")
    files["toml"] = toml
    return files


def _tiny_cameractrl(path: Path) -> Path:
    from tests.support import tiny_cameractrl
    from tests.support.tiny_models import UNET_CHANNELS

    return tiny_cameractrl.write(path, UNET_CHANNELS)


def child_marionette(files: dict, dtype: str, adapters: bool = False) -> dict:
    import torch

    # The libraries a loaded server has imported, before the baseline and the clock, as the diffusers side imports its
    # own: the figures are then the loading's alone.
    from diffusers import AutoencoderKL, ControlNetModel, MotionAdapter, UNet2DConditionModel  # noqa: F401
    from transformers import CLIPTextModel, CLIPVisionModelWithProjection  # noqa: F401

    import server.engine.pipeline  # noqa: F401
    from server.engine.conditioning import Control
    from server.engine.store import ModelStore
    from server.loaders import ModelConfig, file_identity

    baseline = rss_gb()
    t0 = time.perf_counter()
    store = ModelStore(ModelConfig.load(files["toml"]), device="cpu", dtype=dtype)
    for kind, name in (("base", "sd15"), ("motion_module", "v2")):
        file_identity(store.config.get(kind, name), wait=False)  # what a job's plan does: hashes start
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    nets = [store.controlnet(n) for n in CONTROLNETS]
    extra = []
    if adapters:  # what a job with camera_motion "cameractrl" and an image reference loads besides
        extra = [store.camera_control("cameractrl"), *store.ip_adapter("plus")]
    loaded_s = time.perf_counter() - t0
    guide = torch.rand(2, 3, 64, 64)
    until_first_step(
        lambda: pipe.generate(
            prompt="a marionette",
            num_frames=2,
            height=64,
            width=64,
            steps=1,
            controls=[Control(n, guide) for n in nets],
        ),
        pipe.unet,
        *nets,
    )
    first_step_s = time.perf_counter() - t0
    parts = store._component("base", "sd15")
    touch(pipe.unet, pipe.vae, pipe.text_encoder, *nets, *extra)
    return {
        "first_step_s": first_step_s,
        "loaded_s": loaded_s,
        "peak_rss_gb": peak_rss_gb(),
        "baseline_gb": baseline,
        "fp16_weight_gb": weight_bytes(
            parts["unet"], parts["vae"], parts["text_encoder"], store._component("motion_module", "v2"), *nets, *extra
        )
        / 2**30,
        "dtype": str(pipe.unet.dtype),
    }


def child_diffusers(files: dict, dtype: str) -> dict:
    import torch
    from diffusers import (
        AnimateDiffControlNetPipeline,
        ControlNetModel,
        MotionAdapter,
        MultiControlNetModel,
        StableDiffusionPipeline,
    )

    torch_dtype = getattr(torch, dtype)
    baseline = rss_gb()
    t0 = time.perf_counter()
    sd = StableDiffusionPipeline.from_single_file(
        str(files["sd15"]),
        config=str(files["pipeline_config"]),
        torch_dtype=torch_dtype,
        local_files_only=True,
        safety_checker=None,
        requires_safety_checker=False,
    )
    adapter = MotionAdapter.from_single_file(
        str(files["motion"]), config=str(files["configs"]["motion"]), torch_dtype=torch_dtype, local_files_only=True
    )
    nets = [
        ControlNetModel.from_single_file(
            str(p), config=str(files["configs"]["controlnet"]), torch_dtype=torch_dtype, local_files_only=True
        )
        for p in files["controlnets"]
    ]
    pipe = AnimateDiffControlNetPipeline.from_pipe(sd, motion_adapter=adapter, controlnet=MultiControlNetModel(nets))
    pipe.to(dtype=torch_dtype)  # from_pipe builds the motion UNet in float32 (diffusers' from_unet2d)
    pipe.set_progress_bar_config(disable=True)
    loaded_s = time.perf_counter() - t0
    until_first_step(
        lambda: pipe(
            prompt="a marionette",
            num_frames=2,
            height=64,
            width=64,
            num_inference_steps=1,
            output_type="np",
            conditioning_frames=[[torch.rand(3, 64, 64)] * 2] * len(nets),
        ),
        pipe.unet,
        *nets,
    )
    first_step_s = time.perf_counter() - t0
    touch(pipe.unet, pipe.vae, pipe.text_encoder, *nets)
    return {
        "first_step_s": first_step_s,
        "loaded_s": loaded_s,
        "peak_rss_gb": peak_rss_gb(),
        "baseline_gb": baseline,
        "dtype": str(pipe.unet.dtype),
    }


SIDES = ("diffusers", "marionette", "adapters")
LABELS = {
    "diffusers": "plain diffusers",
    "marionette": "Marionette",
    "adapters": "Marionette + CameraCtrl + IP-Adapter plus + ViT-H/14 encoder",
}


def run_child(side: str, files_json: str, dtype: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, "--files", files_json, "--dtype", dtype],
        capture_output=True,
        text=True,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if out.returncode or line is None:
        raise SystemExit(f"{side} failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(line[len("RESULT ") :])


def weight_files(files: dict, side: str) -> list[Path]:
    paths = [files["sd15"], files["motion"], *files["controlnets"]]
    if side == "adapters":
        paths += [files["cameractrl"], files["ip_adapter"], *sorted(Path(files["image_encoder"]).glob("*.safetensors"))]
    return list(dict.fromkeys(paths))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dtype", default="float16")
    p.add_argument("--tiny", action="store_true", help="the tiny models instead of the full-size placeholders")
    p.add_argument("--root", type=Path, help="where the files go (kept); default: a temporary folder, removed")
    p.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating; the best is reported")
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated, of {', '.join(SIDES)}")
    p.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--files", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        import torch

        files = {k: (Path(v) if isinstance(v, str) else v) for k, v in json.loads(args.files).items()}
        files["configs"] = {k: Path(v) for k, v in files["configs"].items()}
        with torch.no_grad():
            if args.child == "diffusers":
                result = child_diffusers(files, args.dtype)
            else:
                result = child_marionette(files, args.dtype, adapters=args.child == "adapters")
        print("RESULT " + json.dumps(result), flush=True)
        return

    sides = [s for s in args.sides.split(",") if s]
    unknown = sorted(set(sides) - set(SIDES))
    if unknown:
        raise SystemExit(f"--sides: unknown {', '.join(unknown)}; use {', '.join(SIDES)}")
    root = args.root or Path(tempfile.mkdtemp(prefix="marionette-bench-load-"))
    try:
        t = time.perf_counter()
        files = write_files(root, args.tiny)
        print(f"files written in {time.perf_counter() - t:.0f} s under {root}", flush=True)
        for path in weight_files(files, "adapters"):  # into the page cache, so that no side pays the first read
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass
        files_json = json.dumps(
            {
                k: (
                    str(v)
                    if isinstance(v, Path)
                    else {a: str(b) for a, b in v.items()}
                    if isinstance(v, dict)
                    else [str(x) for x in v]
                )
                for k, v in files.items()
            }
        )
        results = {side: [] for side in sides}
        for _ in range(args.repeat):
            for side in sides:
                results[side].append(run_child(side, files_json, args.dtype))
                print(side, results[side][-1], flush=True)
        best = {side: min(runs, key=lambda r: r["first_step_s"]) for side, runs in results.items()}
        print(
            f"\n{'tiny' if args.tiny else 'full-size placeholder'} files; {args.dtype} on the CPU; "
            f"best of {args.repeat}"
        )
        print(
            "| side | files on disk GiB | weights in fp16 GiB | peak host RAM GiB | of which libraries before "
            "loading | loading: peak − libraries GiB | × fp16 weight bytes | loaded s | to first step s |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for side, r in best.items():
            # plain diffusers loads the same models as Marionette's row: the same fp16 bytes
            own = r.get("fp16_weight_gb") or next(
                (b["fp16_weight_gb"] for s, b in best.items() if s == "marionette"), 0
            )
            disk = sum(os.path.getsize(p) for p in weight_files(files, side)) / 2**30
            grown = r["peak_rss_gb"] - r["baseline_gb"]
            ratio = f"{grown / own:.2f}" if own else "–"
            print(
                f"| {LABELS[side]} | {disk:.2f} | {own:.2f} | {r['peak_rss_gb']:.2f} | {r['baseline_gb']:.2f} | "
                f"{grown:.2f} | {ratio} | {r['loaded_s']:.1f} | {r['first_step_s']:.1f} |"
            )
        if "diffusers" in best and "marionette" in best:
            ratio = best["marionette"]["first_step_s"] / best["diffusers"]["first_step_s"]
            print(f"cold start ratio Marionette / plain diffusers: {ratio:.2f}")
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
