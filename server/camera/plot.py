"""The camera match as a picture: components over time and each window's LoRA weights (matplotlib Agg)."""

from __future__ import annotations

import io

import numpy as np

from ..protocol import MOTION_LORAS
from .motion import COMPONENTS


def plot_png(components: dict, schedule: list[dict], width_px: int = 640, height_px: int = 400) -> bytes:
    """A PNG: the per-pair components over time (top) and each window's chosen LoRA weights (bottom)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend state
    from matplotlib.figure import Figure

    dpi = 80
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    x = np.asarray(components["index"], dtype=np.float64) + 0.5
    for name in COMPONENTS:
        top.plot(
            x,
            components[name],
            label=name,
            linewidth=1.2,
            linestyle="-" if name in ("yaw", "pitch", "roll", "horizon_roll") else "--",
        )
    top.axhline(0.0, color="0.6", linewidth=0.6)
    top.set_ylabel("per second")
    top.set_title("camera motion: turns rad/s, moves depths/s, zoom log-focal/s", fontsize=9)
    top.legend(fontsize=7, ncol=4, loc="upper left")
    colours = {name: f"C{i}" for i, name in enumerate(MOTION_LORAS)}
    shown = set()
    for w in schedule:
        for m in w["motion_loras"]:
            bottom.hlines(
                m["weight"],
                w["start"],
                w["end"] - 1,
                colors=colours.get(m["name"], "k"),
                linewidth=3,
                label=None if m["name"] in shown else m["name"],
            )
            shown.add(m["name"])
        bottom.axvline(w["start"], color="0.85", linewidth=0.6)
    bottom.set_ylim(0, max([1.0] + [m["weight"] for w in schedule for m in w["motion_loras"]]) * 1.4)
    bottom.set_ylabel("LoRA weight")
    bottom.set_xlabel("job frame")
    if shown:
        bottom.legend(fontsize=7, ncol=4, loc="upper left")
    else:
        bottom.text(0.5, 0.5, "no camera motion LoRA", transform=bottom.transAxes, ha="center", va="center")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
