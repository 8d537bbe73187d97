"""The GPU figures in one run (bench/gpu.sh installs what it needs and calls this): full-size random-weight models
in the public layouts (tests/fullsize.py writers), then, in one process and on the same loaded weights:

- plain diffusers fp16 (`AnimateDiffControlNetPipeline`) against Marionette with 1 and 3 ControlNets;
- Marionette with channels-last, with fused QKV projections, and with both plus `torch.compile` of the UNet and
  the ControlNets (timed after warm-up; the compile time is reported on its own);
- peak GPU memory of each, the time to the first preview, a 128-frame clip (context windows, both modes);
- the low-VRAM option (float8 layerwise casting, ControlNets offloaded when inactive, tiled VAE) in a fresh store.

Writes a table in the bench/RESULTS.md format to --out and prints it.

    bench/gpu.sh                                  # a GPU machine: 16 frames 512², 25 steps, CFG 7.5, fp16
    bench/gpu.sh --tiny --device cpu              # a dry run of every measurement on the tiny models
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.utils import logging as diffusers_logging

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from server.engine.conditioning import Control, latent_preview  # noqa: E402
from server.engine.store import ModelStore  # noqa: E402
from server.engine.windows import ContextWindows  # noqa: E402
from server.loaders import ModelConfig  # noqa: E402

CONTROLNETS = ("depth", "normalbae", "openpose")
TINY_NOTE = "Tiny models (a dry run: these figures mean nothing)"
FULL_NOTE = "Full-size random-weight models in the public layouts (tests/fullsize.py)"


def write_models(root: Path, tiny_models: bool) -> Path:
    """A models.toml naming SD1.5, the v2 motion module and three ControlNets as single files."""
    root.mkdir(parents=True, exist_ok=True)
    if tiny_models:
        from tests.support import tiny_models as tiny

        tiny.build(root / "tiny")
        base = root / "tiny"
        lines = [
            "[base.sd15]",
            f'source = "{base / "sd15.safetensors"}"',
            f'config = "{base / "sd15"}"',
            "[motion_module.v2]",
            f'source = "{base / "mm_sd_v15_v2.ckpt"}"',
            f'config = "{base / "motion_v2"}"',
        ]
        for name in CONTROLNETS:
            lines += [
                f"[controlnet.{name}]",
                f'source = "{base / "control_v11f1p_sd15_depth.pth"}"',
                f'config = "{base / "controlnet" / "depth"}"',
            ]
    else:
        import fullsize

        files = {"sd15": root / "v1-5-pruned-emaonly.safetensors", "v2": root / "mm_sd_v15_v2.ckpt"}
        if not files["sd15"].exists():
            fullsize.write_sd15(files["sd15"])
        if not files["v2"].exists():
            fullsize.write_motion_module(files["v2"], "v2")
        lines = ["[base.sd15]", f'source = "{files["sd15"]}"', "[motion_module.v2]", f'source = "{files["v2"]}"']
        for name in CONTROLNETS:
            path = root / f"{fullsize.CONTROLNETS[name]}.pth"
            if not path.exists():
                fullsize.write_controlnet_original(path)
            lines += [f"[controlnet.{name}]", f'source = "{path}"']
        hf_home = root / "hf"  # empty: everything loads offline from the files and the shipped configs
        hf_home.mkdir(exist_ok=True)
        import os

        os.environ["HF_HOME"] = str(hf_home)
        os.environ["HF_HUB_OFFLINE"] = "1"
    toml = root / "gpu_models.toml"
    toml.write_text("\n".join(lines) + "\n")
    return toml


class Bench:
    def __init__(self, args):
        self.args = args
        self.cuda = args.device.startswith("cuda")
        self.rows: list[dict] = []
        self.t_start = time.perf_counter()
        self.report = None  # () -> the table so far, set once the models are loaded

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def measure(self, name: str, fn, runs: int | None = None, note: str = "", reference=None) -> dict:
        """Warm-up, then the median of `runs` timed calls; peak GPU memory over the timed calls."""
        runs = runs or self.args.runs
        t = time.perf_counter()
        fn()
        self.sync()
        warm = time.perf_counter() - t
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            out = fn()
            self.sync()
            times.append(time.perf_counter() - t)
        if reference is not None:  # a speed-up must not change the result beyond rounding
            diff = np.abs(np.asarray(out, dtype=np.float32) - np.asarray(reference, dtype=np.float32))
            note = (
                note + "; " if note else ""
            ) + f"frames vs the default run: mean abs diff {diff.mean():.2f}, max {diff.max():.0f} (of 255)"
        row = {
            "name": name,
            "s": statistics.median(times),
            "warmup_s": warm,
            "note": note,
            "out": out,
            "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if self.cuda else float("nan"),
        }
        self.add(row)
        return row

    def add(self, row: dict):
        """Keep a row and rewrite the table at once: a run cut short (a device lease's time limit) still leaves
        every figure measured so far in --out."""
        self.rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "out"}), flush=True)
        if self.report:
            self.args.out.write_text(self.report())

    def over_budget(self, part: str) -> bool:
        """Whether the --budget seconds are spent; the parts left are named in the table's last row."""
        if time.perf_counter() - self.t_start <= self.args.budget:
            return False
        self.add(
            {
                "name": f"{part}: not run",
                "s": float("nan"),
                "warmup_s": float("nan"),
                "peak_gb": float("nan"),
                "note": f"--budget {self.args.budget:.0f} s spent",
            }
        )
        return True


def guides(frames, size):
    return torch.rand((frames, 3, size, size), generator=torch.Generator().manual_seed(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tiny", action="store_true", help="tiny models at 64²/4 steps: checks the script, no figures")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="float16")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--long-frames", type=int, default=128)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--root", type=Path, help="where the model files go (default: a temporary folder)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: compile,long,lowvram")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "gpu_results.md")
    p.add_argument("--budget", type=float, default=float("inf"), help="seconds after which the parts left are skipped")
    args = p.parse_args()
    diffusers_logging.set_verbosity_error()
    if args.tiny:
        args.size, args.steps, args.long_frames = min(args.size, 64), min(args.steps, 4), min(args.long_frames, 48)
    skip = set(filter(None, args.skip.split(",")))
    bench = Bench(args)
    t_start = bench.t_start
    root = args.root or Path(tempfile.mkdtemp(prefix="marionette-gpu-"))
    toml = write_models(root, args.tiny)
    write_s = time.perf_counter() - t_start

    t = time.perf_counter()
    store = ModelStore(ModelConfig.load(toml), device=args.device, dtype=args.dtype, low_vram=False)
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    nets = [store.controlnet(n) for n in CONTROLNETS]
    bench.sync()
    load_s = time.perf_counter() - t
    common = dict(
        prompt="a wooden marionette dancing on a stage", negative_prompt="blurry", height=args.size, width=args.size
    )
    g = guides(args.frames, args.size)

    state = {"pipe": pipe, "nets": nets}

    def ours(n_nets, frames=args.frames, context=None, on_step=None):
        gg = g if frames == args.frames else guides(frames, args.size)
        p, ns = state["pipe"], state["nets"]
        return lambda: p.generate(
            num_frames=frames,
            steps=args.steps,
            context=context,
            on_step=on_step,
            controls=[Control(net, gg) for net in ns[:n_nets]],
            guidance=7.5,
            generator=torch.Generator().manual_seed(0),
            **common,
        )

    # plain diffusers on the very same modules
    from diffusers import AnimateDiffControlNetPipeline, MultiControlNetModel

    def plain(n_nets):
        ns = state["nets"]
        parts = {
            k: v
            for k, v in state["pipe"].components.items()
            if k in ("vae", "text_encoder", "tokenizer", "unet", "motion_adapter", "scheduler")
        }
        net = ns[0] if n_nets == 1 else MultiControlNetModel(ns[:n_nets])
        d = AnimateDiffControlNetPipeline(**parts, controlnet=net)
        d.set_progress_bar_config(disable=True)
        frames = [list(g)] * n_nets if n_nets > 1 else list(g)
        return lambda: d(
            num_frames=args.frames,
            num_inference_steps=args.steps,
            conditioning_frames=frames,
            output_type="np",
            guidance_scale=7.5,
            generator=torch.Generator().manual_seed(0),
            **common,
        )

    machine = torch.cuda.get_device_name() if bench.cuda else platform.processor() or platform.machine()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "?"

    def report() -> str:
        base = bench.rows[0]["s"]  # plain diffusers, 1 ControlNet
        lines = [
            f"## GPU: Marionette against plain diffusers ({time.strftime('%Y-%m-%d')})",
            "",
            f"Command: `bench/gpu.sh {' '.join(sys.argv[1:])}` at commit {commit}. Machine: {machine}; torch "
            f"{torch.__version__}. {TINY_NOTE if args.tiny else FULL_NOTE}; "
            f"{args.frames} frames, {args.size}², {args.steps} steps, CFG 7.5, {args.dtype}, median of {args.runs} "
            f"after one warm-up. Files written in {write_s:.0f} s, loaded in {load_s:.1f} s; "
            f"{time.perf_counter() - t_start:.0f} s from the start to this table.",
            "",
            "| configuration | s/job | × plain diffusers (1 ControlNet) | peak VRAM GiB | warm-up s | note |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in bench.rows:
            lines.append(
                f"| {r['name']} | {r['s']:.3f} | {r['s'] / base:.2f} | {r['peak_gb']:.2f} | "
                f"{r['warmup_s']:.1f} | {r['note']} |"
            )
        return "\n".join(lines) + "\n"

    bench.report = report
    bench.measure("plain diffusers, 1 ControlNet", plain(1))
    bench.measure("plain diffusers, 3 ControlNets", plain(3))
    ref1 = bench.measure("Marionette, 1 ControlNet", ours(1))["out"]
    ref3 = bench.measure("Marionette, 3 ControlNets", ours(3))["out"]

    first = {}

    def first_preview(i, n, x0):
        if "s" not in first:
            latent_preview(x0)
            bench.sync()
            first["s"] = time.perf_counter() - first["t0"]

    first["t0"] = time.perf_counter()
    ours(1, on_step=first_preview)()
    bench.add(
        {
            "name": "Marionette, 1 ControlNet: time to the first preview",
            "s": first["s"],
            "warmup_s": float("nan"),
            "peak_gb": float("nan"),
            "note": "latent preview after step 1",
        }
    )

    if "long" not in skip and not bench.over_budget("long clips"):
        for mode in ("temporal", "unet"):
            ctx = ContextWindows(length=16, overlap=4, mode=mode)
            row = bench.measure(
                f"Marionette, 1 ControlNet, {args.long_frames} frames, windows mode {mode}",
                ours(1, frames=args.long_frames, context=ctx),
                runs=1,
            )
            row["note"] = f"{row['s'] / args.long_frames:.4f} s/frame"
            args.out.write_text(bench.report())

    for model in [pipe.unet, *nets]:
        model.to(memory_format=torch.channels_last)
    bench.measure("Marionette, 1 ControlNet, channels-last", ours(1), reference=ref1)
    pipe.unet.fuse_qkv_projections()
    for net in nets:
        net.fuse_qkv_projections()
    bench.measure("Marionette, 1 ControlNet, channels-last + fused QKV", ours(1), reference=ref1)
    if "compile" not in skip and not bench.over_budget("torch.compile"):
        pipe.unet.compile(fullgraph=False)
        for net in nets:
            net.compile(fullgraph=False)
        bench.measure(
            "Marionette, 1 ControlNet, channels-last + fused QKV + torch.compile",
            ours(1),
            note="compiled on the warm-up call",
            reference=ref1,
        )
        bench.measure("Marionette, 3 ControlNets, channels-last + fused QKV + torch.compile", ours(3), reference=ref3)

    state.clear()
    pipe = nets = store = None
    gc.collect()
    if bench.cuda:
        torch.cuda.empty_cache()
    if "lowvram" not in skip and not bench.over_budget("low-VRAM"):
        low = ModelStore(ModelConfig.load(toml), device=args.device, dtype=args.dtype, low_vram=True)
        lpipe = low.pipeline("sd15", "v2")
        low.set_loras(lpipe, [])
        lnets = [low.controlnet(n) for n in CONTROLNETS]
        state.update(pipe=lpipe, nets=lnets)
        bench.measure(
            "Marionette low-VRAM (fp8 layerwise, ControlNets offloaded, tiled VAE), 1 ControlNet",
            ours(1),
            runs=1,
            reference=ref1,
        )
        bench.measure("Marionette low-VRAM, 3 ControlNets", ours(3), runs=1, reference=ref3)

    text = bench.report()
    args.out.write_text(text)
    print("\n" + text)


if __name__ == "__main__":
    main()
