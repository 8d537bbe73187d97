"""Long clips: cost per frame at 16, 64 and 128 frames for the three ways of running a clip longer than the motion
module's window, in the same run: context windows through the whole UNet ("unet"), windows on the motion modules
only with every other layer and the ControlNets in frame chunks ("temporal"), and diffusers' FreeNoise (windows on
the temporal attention, spatial layers on all frames at once). For each: seconds per frame, the largest tensor any
layer produces (its working memory; the activations passed between blocks are not counted), and the seam score.

    .venv/bin/python bench/bench_long.py                      # tiny models, CPU
    .venv/bin/python bench/bench_long.py --models FILE --device cuda --dtype float16 --size 512 --steps 25
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.engine.conditioning import Control  # noqa: E402
from server.engine.store import ModelStore  # noqa: E402
from server.engine.windows import ContextWindows, context_windows  # noqa: E402
from server.loaders import ModelConfig  # noqa: E402
from tests.support import tiny_models as tiny  # noqa: E402
from tests.support.metrics import seam_score  # noqa: E402

MODES = ("unet", "temporal", "freenoise")


class LargestTensor:
    """The largest output (in elements) of any layer (leaf module) of the given models while active, and of any
    module at all (blocks and whole models included: the activations passed between blocks)."""

    def __init__(self, *models):
        self.modules = [m for model in models for m in model.modules()]
        self.layer = self.block = 0

    def __enter__(self):
        def record(module, args, output):
            leaf = not any(True for _ in module.children())
            for t in output if isinstance(output, tuple) else (output,):
                if isinstance(t, torch.Tensor):
                    self.block = max(self.block, t.numel())
                    if leaf:
                        self.layer = max(self.layer, t.numel())

        self.hooks = [m.register_forward_hook(record) for m in self.modules]
        return self

    def __exit__(self, *exc):
        for h in self.hooks:
            h.remove()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--frames", default="16,64,128")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--chunk", type=int, default=16, help="frames per call of a per-frame layer (mode temporal)")
    p.add_argument("--controlnet", default="depth", help="a ControlNet of the models' config; '' for none")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--models", type=Path)
    args = p.parse_args()
    models = args.models or tiny.build(Path(tempfile.mkdtemp(prefix="marionette-bench-long-")) / "tiny")
    store = ModelStore(ModelConfig.load(models), device=args.device, dtype=args.dtype)
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    net = store.controlnet(args.controlnet) if args.controlnet else None
    common = dict(prompt="a marionette dancing", negative_prompt="blurry", height=args.size, width=args.size)
    cuda = args.device.startswith("cuda")

    def timed(fn):
        fn()  # warm-up at this length
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t, out

    def runner(mode, frames, steps):
        guide = torch.rand((frames, 3, args.size, args.size), generator=torch.Generator().manual_seed(1))
        if mode == "freenoise":
            from diffusers import AnimateDiffControlNetPipeline

            def fn():
                free = (
                    AnimateDiffControlNetPipeline(
                        **{
                            k: v
                            for k, v in pipe.components.items()
                            if k in ("vae", "text_encoder", "tokenizer", "unet", "motion_adapter", "scheduler")
                        },
                        controlnet=net,
                    )
                    if net is not None
                    else pipe
                )
                free.set_progress_bar_config(disable=True)
                free.enable_free_noise(context_length=args.length, context_stride=args.length - args.overlap)
                try:
                    extra = {"conditioning_frames": [im for im in guide]} if net is not None else {}
                    out = free(
                        num_frames=frames,
                        num_inference_steps=steps,
                        output_type="np",
                        guidance_scale=7.5,
                        generator=torch.Generator().manual_seed(0),
                        **common,
                        **extra,
                    ).frames[0]
                finally:
                    free.disable_free_noise()
                return (out * 255).round()

            return fn
        context = ContextWindows(length=args.length, overlap=args.overlap, mode=mode, chunk=args.chunk)
        controls = [Control(net, guide, 1.0)] if net is not None else []
        return lambda: pipe.generate(
            num_frames=frames,
            steps=steps,
            context=context,
            controls=controls,
            guidance=7.5,
            generator=torch.Generator().manual_seed(0),
            **common,
        )

    rows = []
    modes = args.modes.split(",")
    for frames in [int(f) for f in args.frames.split(",")]:
        windows = context_windows(frames, args.length, args.overlap, loop=False)
        for mode in modes:
            with LargestTensor(pipe.unet, *([net] if net is not None else [])) as largest:
                runner(mode, frames, 1)()
            seconds, out = timed(runner(mode, frames, args.steps))
            seam = seam_score(out, windows) if len(windows) > 1 else float("nan")
            rows.append((frames, mode, seconds / frames, largest.layer, largest.block, seam))
            print(rows[-1], flush=True)
    first = {mode: next(r[2] for r in rows if r[1] == mode) for mode in modes}
    print(
        f"\n{args.size}x{args.size}, {args.steps} steps, CFG 7.5, window {args.length}/{args.overlap}, chunk "
        f"{args.chunk}, ControlNet {args.controlnet or 'none'}, {args.device} {args.dtype}, models {models}"
    )
    print(
        "| frames | mode | s/frame | × own cost/frame at 16 | × FreeNoise s/frame | largest layer tensor (M) "
        "| largest block tensor (M) | seam score |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for frames, mode, per_frame, layer, block, seam in rows:
        free = next((r[2] for r in rows if r[0] == frames and r[1] == "freenoise"), float("nan"))
        print(
            f"| {frames} | {mode} | {per_frame:.4f} | {per_frame / first[mode]:.2f} | {per_frame / free:.2f} | "
            f"{layer / 1e6:.3f} | {block / 1e6:.3f} | {seam:.3f} |"
        )


if __name__ == "__main__":
    main()
