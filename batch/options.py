"""The batch command's options."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..server.protocol import PROMPT_WEIGHTINGS

PROG = "blender -b FILE.blend --command marionette batch"


def size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 8 or any(v % 8 for v in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT or one size, multiples of 8, e.g. 512x512")
    return (parts[0], parts[-1])


def directions(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: give the number of camera yaws, 1 to 64 (4 or 8 for games)")
    return int(text)


def reference(text: str) -> tuple[Path, float]:
    """IMAGE or IMAGE:WEIGHT (a drive letter's colon is part of the path)."""
    path, weight = text, 0.6
    head, _, tail = text.rpartition(":")
    if head:
        try:
            path, weight = head, float(tail)
        except ValueError:
            pass
    if not 0.0 <= weight <= 2.0:
        raise argparse.ArgumentTypeError(f"{text!r}: the weight after ':' goes from 0 to 2, e.g. hero.png:0.6")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no image file {path!r}; give IMAGE or IMAGE:WEIGHT")
    return Path(path).resolve(), weight


def fraction(text: str) -> float:
    return _number(text, 0.0, 1.0, "from 0 (the render unchanged) to 1 (ignore it)")


def motion_scale(text: str) -> float:
    return _number(text, 0.0, 3.0, "from 0 to 3 (1 = as the motion module was trained)")


def _number(text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number {what}")
    return value


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="One sprite animation per action of a rigged character.")
    p.add_argument("--armature", help="the character's armature object (default: the only armature in the file)")
    p.add_argument("--actions", default="", help="comma-separated action names (default: all actions)")
    p.add_argument("--camera", help="camera object (default: the scene camera)")
    p.add_argument(
        "--collection",
        default="",
        help="collection whose objects cut the sprites' alpha (default: the armature's hierarchy)",
    )
    p.add_argument("--out", type=Path, default=Path("marionette_batch"), help="output folder")
    g = p.add_argument_group("generation")
    g.add_argument("--prompt", default="a stylised game character, clean background")
    g.add_argument("--negative", default="blurry, deformed, low quality")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--steps", type=int, help="denoising steps (default: the scene's setting)")
    g.add_argument("--guidance", type=float)
    g.add_argument("--base", help="checkpoint name in the server's model config")
    g.add_argument("--vae", help="VAE name in the server's model config (default: the scene's; \"\": the checkpoint's)")
    g.add_argument(
        "--clip-skip",
        type=int,
        choices=range(1, 13),
        metavar="N",
        help="A1111's Clip skip, 1-12: 1 the text encoder's last layer, 2 for anime checkpoints made for it "
        "(default: the scene's setting)",
    )
    g.add_argument(
        "--prompt-weighting",
        choices=PROMPT_WEIGHTINGS,
        help="how (word:1.2) weights are read: a1111 (AUTOMATIC1111) or comfy (ComfyUI) (default: the scene's setting)",
    )
    g.add_argument("--motion-module", help="motion module name in the server's model config")
    g.add_argument("--size", type=size, help="WIDTHxHEIGHT (default: the scene's render size)")
    for kind in ("depth", "normal", "pose"):
        g.add_argument(
            f"--{kind}",
            type=float,
            nargs="?",
            const=1.0,
            metavar="WEIGHT",
            help=f"use the {kind} guide (weight, default 1.0); when any guide flag is given, the "
            f"guides not named are off, else the scene's guide settings apply",
        )
    t = p.add_argument_group("styling")
    t.add_argument(
        "--reference",
        type=reference,
        action="append",
        default=[],
        metavar="IMAGE[:WEIGHT]",
        help="an image whose look every action and direction takes (IP-Adapter; weight 0-2, default 0.6); repeatable",
    )
    t.add_argument("--reference-model", default="", help="IP-Adapter name in the server's config (default: its first)")
    t.add_argument(
        "--init-strength",
        type=fraction,
        metavar="S",
        help="start from the scene's render of every frame (video-to-video): 0 keeps the render, 1 ignores it",
    )
    t.add_argument(
        "--init-engine",
        choices=("scene", "workbench", "eevee"),
        default="scene",
        help="engine of the start frames with --init-strength (default: the scene's)",
    )
    t.add_argument(
        "--free-init",
        type=int,
        choices=range(1, 6),
        metavar="N",
        help="FreeInit iterations, 1-5 (1 = off); each iteration runs the whole generation again",
    )
    t.add_argument("--motion-scale", type=motion_scale, metavar="S", help="motion scale, 0-3 (1 = as trained)")
    t.add_argument(
        "--motion-scales",
        metavar="S1,S2,...",
        help="one motion scale per context window (for actions long enough to run in windows)",
    )
    s = p.add_argument_group("server")
    s.add_argument("--server", help="URL of a running server")
    s.add_argument("--token", default="", help="the server's bearer token")
    s.add_argument(
        "--models-config", type=Path, help="model config TOML: start a server on it for this batch (stopped at the end)"
    )
    s.add_argument(
        "--model-root",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="an A1111/Forge or ComfyUI folder (or folder of models) for the server started here; repeatable "
        "(default: the preferences' Model folders)",
    )
    s.add_argument(
        "--server-python",
        default="",
        help="Python with the server's packages (default: the preference, else this Python)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--directions",
        type=directions,
        default=1,
        metavar="N",
        help="render each action from N camera yaws around the character (4, 8 ...), one sheet row each",
    )
    o.add_argument("--trim", action="store_true", help="trim each sprite to its opaque box in the sheet")
    o.add_argument("--columns", type=int, help="sheet columns with one direction (default: near-square)")
    o.add_argument("--loop", action="store_true", help="generate the actions as seamless loops")
    o.add_argument("--gif", action="store_true")
    o.add_argument("--mp4", action="store_true")
    o.add_argument("--alpha-samples", type=int, default=16, help="Cycles samples of the silhouette (edge quality)")
    o.add_argument("--force", action="store_true", help="redo every action, even those already done")
    o.add_argument("--verbose", action="store_true", help="show the render engine's own output")
    args = p.parse_args(argv)
    for root in args.model_root:
        if not root.expanduser().is_dir():
            p.error(f"--model-root {root}: folder not found")
    return args
