"""The batch command's options."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    s = p.add_argument_group("server")
    s.add_argument("--server", help="URL of a running server")
    s.add_argument("--token", default="", help="the server's bearer token")
    s.add_argument(
        "--models-config", type=Path, help="model config TOML: start a server on it for this batch (stopped at the end)"
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
    return p.parse_args(argv)
