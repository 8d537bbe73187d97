"""Long clips: cost per frame at 16, 64 and 128 frames for the three ways of running a clip longer than the motion
module's window, in the same run: context windows through the whole UNet ("unet"), windows on the motion modules
only with every other layer and the ControlNets in frame chunks ("temporal"), and diffusers' FreeNoise (windows on
the temporal attention, spatial layers on all frames at once). For each: seconds per frame, the largest tensor any
layer produces (its working memory; the activations passed between blocks are not counted), and the seam score.
Both sides decode in the same chunks of frames (`--decode-chunk`) and set up outside the timed runs (FreeNoise's
`enable_free_noise` once per length); each figure is the best of `--repeats` runs, wall clock and the process's CPU
time (with `--threads 1` the CPU time is the work done, whatever the machine's load).

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
    p.add_argument(
        "--chunk", type=int, default=ContextWindows.chunk, help="frames per call of a per-frame layer (mode temporal)"
    )
    p.add_argument("--controlnet", default="depth", help="a ControlNet of the models' config; '' for none")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--models", type=Path)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row; the best counts")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--decode-chunk", type=int, default=16, help="frames per VAE decode call, both sides")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models or tiny.build(Path(tempfile.mkdtemp(prefix="marionette-bench-long-")) / "tiny")
    store = ModelStore(ModelConfig.load(models), device=args.device, dtype=args.dtype)
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    net = store.controlnet(args.controlnet) if args.controlnet else None
    common = dict(prompt="a marionette dancing", negative_prompt="blurry", height=args.size, width=args.size)
    free = pipe  # FreeNoise: diffusers' own pipeline on the same modules
    if net is not None:
        from diffusers import AnimateDiffControlNetPipeline

        parts = ("vae", "text_encoder", "tokenizer", "unet", "motion_adapter", "scheduler")
        free = AnimateDiffControlNetPipeline(**{k: v for k, v in pipe.components.items() if k in parts}, controlnet=net)
    free.set_progress_bar_config(disable=True)
    cuda = args.device.startswith("cuda")

    def timed(fn):
        out = fn()  # warm-up at this length
        best = (float("inf"), float("inf"))
        for _ in range(args.repeats):
            if cuda:
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            if cuda:
                torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
        return best, out

    def runner(mode, frames, steps):
        guide = torch.rand((frames, 3, args.size, args.size), generator=torch.Generator().manual_seed(1))
        if mode == "freenoise":
            extra = {"conditioning_frames": [im for im in guide]} if net is not None else {}

            def fn():
                out = free(
                    num_frames=frames,
                    num_inference_steps=steps,
                    output_type="np",
                    guidance_scale=7.5,
                    generator=torch.Generator().manual_seed(0),
                    decode_chunk_size=args.decode_chunk,
                    **common,
                    **extra,
                ).frames[0]
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
            decode_chunk=args.decode_chunk,
            **common,
        )

    rows = []
    modes = args.modes.split(",")
    for frames in [int(f) for f in args.frames.split(",")]:
        windows = context_windows(frames, args.length, args.overlap, loop=False)
        for mode in modes:
            if mode == "freenoise":
                free.enable_free_noise(context_length=args.length, context_stride=args.length - args.overlap)
            try:
                with LargestTensor(pipe.unet, *([net] if net is not None else [])) as largest:
                    runner(mode, frames, 2)()  # two steps: layers size their chunks after their first call
                (seconds, cpu), out = timed(runner(mode, frames, args.steps))
            finally:
                if mode == "freenoise":
                    free.disable_free_noise()
            seam = seam_score(out, windows) if len(windows) > 1 else float("nan")
            rows.append((frames, mode, seconds / frames, cpu / frames, largest.layer, largest.block, seam))
            print(rows[-1], flush=True)
    first = {mode: next(r[3] for r in rows if r[1] == mode) for mode in modes}
    print(
        f"\n{args.size}x{args.size}, {args.steps} steps, CFG 7.5, window {args.length}/{args.overlap}, chunk "
        f"{args.chunk}, decode chunk {args.decode_chunk}, ControlNet {args.controlnet or 'none'}, {args.device} "
        f"{args.dtype}, {torch.get_num_threads()} threads, best of {args.repeats}, models {models}"
    )
    print(
        "| frames | mode | wall s/frame | CPU s/frame | × own CPU cost/frame at 16 | × FreeNoise CPU s/frame "
        "| largest layer tensor (M) | largest block tensor (M) | seam score |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for frames, mode, per_frame, cpu, layer, block, seam in rows:
        free_cpu = next((r[3] for r in rows if r[0] == frames and r[1] == "freenoise"), float("nan"))
        print(
            f"| {frames} | {mode} | {per_frame:.4f} | {cpu:.4f} | {cpu / first[mode]:.2f} | {cpu / free_cpu:.2f} | "
            f"{layer / 1e6:.3f} | {block / 1e6:.3f} | {seam:.3f} |"
        )


if __name__ == "__main__":
    main()
