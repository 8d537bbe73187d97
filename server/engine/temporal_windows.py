"""Context windows on the motion modules only: every other layer sees each frame once, in chunks of frames.

A module hook, not a fork of diffusers: the forwards of the model's own modules are wrapped on the instances for
the length of a `with` block and restored after it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .motion_scale import scaled
from .windows import contiguous_runs


class TemporalWindows:
    """Temporal-only context windows, installed on a model for the length of a `with` block.

    Every layer that treats frames independently (resnets, spatial and cross attention, down/upsamplers) runs on
    every frame exactly once, `rows` images at a time so that its working memory stays that of one chunk; only the
    motion modules (the layers that mix frames) run on the overlapping windows, `rows` frames' worth of windows per
    call, and their outputs are fused with `table` (each window's scaled first by its motion scale; `select` is told
    the windows of each call before it runs, so per-window conditioning such as CameraCtrl's poses follows them).
    After its first call a layer takes as many times `rows` images as its largest inner output per image is smaller
    than the largest of any layer (a deeper layer, with fewer pixels per image, takes more): the same largest tensor
    in fewer calls, since each call costs Python. Nothing of diffusers is forked: the forwards of the model's own
    modules are wrapped on the instances and restored on exit.
    """

    SPATIAL = ("ResnetBlock2D", "Transformer2DModel", "Downsample2D", "Upsample2D")
    TEMPORAL = ("AnimateDiffTransformer3D",)
    ENDS = ("conv_in", "conv_norm_out", "conv_act", "conv_out")  # the model's own per-frame first and last layers

    def __init__(
        self,
        model: torch.nn.Module,
        windows: list[list[int]],
        table: torch.Tensor,
        rows: int,
        scales: list[float] | None = None,
        select: Callable[[list[int]], None] | None = None,
    ):
        self.model, self.windows, self.table, self.rows = model, windows, table, max(1, rows)
        self.scales = scales
        self.select = select  # told the windows of each call of a motion module before it runs (CameraCtrl)
        self._patched: list[torch.nn.Module] = []
        # Each window as runs of consecutive clip frames (start, stop, offset in the window): slices, not gathers.
        self._runs = [_runs(window) for window in windows]
        self._weight_cache: dict = {}
        self._peak = 0  # the largest output per image of any layer so far (each layer measured on its first call)

    def __enter__(self):
        for module in self.model.modules():
            name = type(module).__name__
            if name in self.TEMPORAL:
                self._wrap(module, self._temporal(module))
            elif name in self.SPATIAL:
                self._wrap(module, self._chunked(module))
        for name in self.ENDS:
            module = getattr(self.model, name, None)
            if isinstance(module, torch.nn.Module):
                self._wrap(module, self._chunked(module))
        return self

    def __exit__(self, *exc):
        for module in self._patched:
            del module.forward  # the instance attribute goes; the class's forward shows through again
        self._patched.clear()

    def _wrap(self, module, forward):
        module.forward = forward
        self._patched.append(module)

    def _rows(self, size: int | None) -> int:
        """Images per call for a layer whose largest inner output takes `size` elements per image: `rows` until it
        has run once, then as many times `rows` as keeps that output within the largest any layer produced at
        `rows` images (a deeper layer, with fewer pixels per image, takes more images in the same memory)."""
        return self.rows if size is None else self.rows * max(1, self._peak // size)

    def _probe(self, module, seen: dict, images: list[int]):
        """Hooks that record, while `module` runs, the largest output of any of its inner layers per image (images[0]:
        the images of the call under way)."""

        def record(inner, args, output):
            for t in output if isinstance(output, tuple) else (output,):
                if isinstance(t, torch.Tensor):
                    seen["size"] = max(seen.get("size", 0), t.numel() // images[0])

        leaves = [m for m in module.modules() if m is not module and not any(True for _ in m.children())]
        return [m.register_forward_hook(record) for m in leaves]

    def _measured(self, seen: dict, hooks, *sizes: int):
        for h in hooks:
            h.remove()
        seen["size"] = max(seen.get("size", 0), *sizes)
        self._peak = max(self._peak, seen["size"])

    def _chunked(self, module):
        forward = module.forward
        seen: dict = {}  # the largest output per image of the layer or any layer inside it, once it has run

        def run(*args, **kwargs):
            first = args[0] if args else next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
            n = first.shape[0]
            rows = self._rows(seen.get("size"))
            images = [min(n, rows)]
            hooks = self._probe(module, seen, images) if "size" not in seen else None
            if n <= rows:
                out = forward(*args, **kwargs)
            else:

                def part(v, s):
                    return v[s : s + rows] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == n else v

                outs = []
                for s in range(0, n, rows):
                    images[0] = min(rows, n - s)
                    outs.append(forward(*[part(a, s) for a in args], **{k: part(v, s) for k, v in kwargs.items()}))
                if isinstance(outs[0], torch.Tensor):
                    out = torch.cat(outs)
                elif isinstance(outs[0], tuple):
                    out = tuple(torch.cat(o) if isinstance(o[0], torch.Tensor) else o[0] for o in zip(*outs))
                else:
                    raise TypeError(f"frame chunks: cannot join outputs of type {type(outs[0]).__name__}")
            if hooks is not None:
                result = out[0] if isinstance(out, tuple) else out
                self._measured(seen, hooks, first.numel() // n, result.numel() // n)
            return out

        return run

    def _temporal(self, module):
        forward = module.forward
        seen: dict = {}

        def run(
            hidden_states,
            encoder_hidden_states=None,
            timestep=None,
            class_labels=None,
            num_frames=1,
            cross_attention_kwargs=None,
        ):
            frames = num_frames
            batch = hidden_states.shape[0] // frames
            x = hidden_states.reshape(batch, frames, *hidden_states.shape[1:])
            out = torch.zeros_like(x)
            weights = self._weights(x)
            length = len(self.windows[0])
            group = max(1, self._rows(seen.get("size")) // (batch * length))  # windows per call
            images = [0]
            hooks = self._probe(module, seen, images) if "size" not in seen else None
            for g in range(0, len(self.windows), group):
                ws = range(g, min(g + group, len(self.windows)))
                stacked = torch.cat([self._take(x, w) for w in ws]).reshape(-1, *x.shape[2:])
                images[0] = stacked.shape[0]
                if self.select is not None:
                    self.select(list(ws))
                y = forward(stacked, encoder_hidden_states, timestep, class_labels, length, cross_attention_kwargs)
                y = y.reshape(len(ws), batch, length, *x.shape[2:])
                for k, w in enumerate(ws):
                    part = y[k] if self.scales is None else scaled(self._take(x, w), y[k], self.scales[w])
                    for (start, stop, at), weight in zip(self._runs[w], weights[w]):
                        out[:, start:stop] += part[:, at : at + stop - start] * weight
            if hooks is not None:
                self._measured(seen, hooks, x[0, 0].numel())
            return out.reshape(hidden_states.shape)

        return run

    def _take(self, x, w):
        """Window w's frames of x (batch, frames, ...): a view where they are consecutive, else the runs joined."""
        runs = self._runs[w]
        if len(runs) == 1:
            return x[:, runs[0][0] : runs[0][1]]
        return torch.cat([x[:, start:stop] for start, stop, _ in runs], 1)

    def _weights(self, x):
        """Each window's fusion weights per run of consecutive frames, shaped to broadcast over x's frame slices;
        sliced from the table once per device and dtype."""
        key = (x.device, x.dtype)
        if key not in self._weight_cache:
            table = self.table.to(x.device, x.dtype)
            shape = (1, -1) + (1,) * (x.ndim - 2)
            self._weight_cache[key] = [
                [table[w, start:stop].reshape(shape) for start, stop, _ in runs] for w, runs in enumerate(self._runs)
            ]
        return self._weight_cache[key]


def _runs(window: list[int]) -> list[tuple[int, int, int]]:
    """(start, stop, offset in the window) of each run of consecutive frames in a window (a looping window wraps)."""
    runs, at = [], 0
    for run in contiguous_runs(window):
        runs.append((run[0], run[-1] + 1, at))
        at += len(run)
    return runs
