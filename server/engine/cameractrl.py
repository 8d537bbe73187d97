"""CameraCtrl on diffusers' AnimateDiff motion UNet: the pose features enter the motion modules' first temporal
self-attention through an attention processor, exactly as hehao13/CameraCtrl's `PoseAdaptorAttnProcessor` with
`query_condition` and `key_value_condition` (its `attention_processor_kwargs`, temporal_attn_names '0'):

    merged = qkv_merge(h + pose) · scale + h          (h: the attention's input, position table already added)
    attention(q = to_q(merged), k = to_k(merged), v = to_v(merged))

in every motion module of the down blocks (down block i gets the encoder's scale i) and the up blocks (up block i
gets scale 3 - i: the same spatial size); there is no mid-block module in v3. The rest of the attention is the
processor diffusers already had, so at scale 0 the UNet computes what it computes without CameraCtrl, bit for bit.
Both halves of classifier-free guidance get the same pose features, as in CameraCtrl's pipeline.
"""

from __future__ import annotations

import contextlib
import re

import torch
from torch import nn

from .cameractrl_encoder import PoseEncoder

_MERGE_KEY = re.compile(
    r"^((?:down|up)_blocks)\.(\d+)\.motion_modules\.(\d+)\.temporal_transformer\."
    r"transformer_blocks\.0\.attention_blocks\.0\.processor\.qkv_merge\.(weight|bias)$"
)


def attention_path(key: str) -> str:
    """The diffusers module of an original `attention_processor_state_dict` key: `down_blocks.0.motion_modules.1.
    temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.qkv_merge.weight` ->
    `down_blocks.0.motion_modules.1.transformer_blocks.0.attn1`."""
    m = _MERGE_KEY.match(key)
    if m is None:
        raise KeyError(key)
    return f"{m[1]}.{m[2]}.motion_modules.{m[3]}.transformer_blocks.0.attn1"


def feature_index(path: str, scales: int) -> int:
    """Which pose-encoder scale a motion module takes: down block i -> i, up block i -> scales - 1 - i."""
    kind, block = path.split(".")[:2]
    return int(block) if kind == "down_blocks" else scales - 1 - int(block)


class CameraCtrl(nn.Module):
    """The pose encoder and the per-attention `qkv_merge` layers of one CameraCtrl checkpoint."""

    def __init__(self, encoder: PoseEncoder, merges: dict[str, nn.Linear]):
        super().__init__()
        self.encoder = encoder
        self.paths = sorted(merges)
        self.merges = nn.ModuleList([merges[p] for p in self.paths])
        self._windows: list[list[torch.Tensor]] | None = None  # per context window, per scale (conditioning)
        self._features: list[torch.Tensor] | None = None  # per scale, the windows of the current call (use)
        self._batch, self._scale = 1, 1.0
        self._stacked: dict[tuple[int, ...], list[torch.Tensor]] = {}
        # What `encode` feeds the encoder (None: its weights' dtype). The store sets it: under --low-vram the
        # weights are stored in float8 and each layer computes in this dtype.
        self.compute_dtype: torch.dtype | None = None
        self.requires_grad_(False)  # inference only, like the UNet (store.pipeline)

    @classmethod
    def from_state_dicts(cls, pose_encoder: dict, attention_processor: dict) -> CameraCtrl:
        encoder = PoseEncoder.from_state_dict(pose_encoder)
        weights: dict[str, dict] = {}
        for key, value in attention_processor.items():
            weights.setdefault(attention_path(key), {})[key.rsplit(".", 1)[1]] = value
        merges = {}
        for path, w in weights.items():
            if set(w) != {"weight", "bias"}:
                raise KeyError(f"{path}: qkv_merge needs a weight and a bias, got {sorted(w)}")
            dim = w["weight"].shape[0]
            if tuple(w["weight"].shape) != (dim, dim):
                raise ValueError(f"{path}: qkv_merge.weight must be square, got {tuple(w['weight'].shape)}")
            with torch.device("meta"):
                merges[path] = nn.Linear(dim, dim)
            merges[path].load_state_dict(w, strict=True, assign=True)
        return cls(encoder, merges)

    @property
    def max_frames(self) -> int:
        return self.encoder.max_frames

    def encode(self, plucker: torch.Tensor) -> list[torch.Tensor]:
        """(frames, 6, H, W) Plücker embedding of one window -> per scale (1, channels, frames, h, w) features."""
        param = next(self.encoder.parameters())
        dtype = self.compute_dtype or param.dtype
        return self.encoder(plucker.to(param.device, dtype).transpose(0, 1)[None])

    @contextlib.contextmanager
    def conditioning(self, windows: list[list[torch.Tensor]], scale: float, batch: int):
        """Within the block, every installed processor conditions on the features of context windows (each from
        `encode`), repeated for a UNet batch of `batch` (2 with classifier-free guidance). With one window they
        apply at once; with several (mode "temporal", where TemporalWindows stacks windows into one call of a
        motion module) `use` names the windows of each call, in the order they are stacked."""
        self._windows, self._batch, self._scale = windows, batch, scale
        self._stacked: dict[tuple[int, ...], list[torch.Tensor]] = {}
        if len(windows) == 1:
            self.use([0])
        try:
            yield
        finally:
            self._windows = self._features = None

    def use(self, windows: list[int]):
        """The next calls of the motion modules take these windows' features, stacked window after window, each
        window's repeated for the batch (TemporalWindows' order). Outside a conditioning block: nothing to do."""
        if self._windows is None:
            return
        key = tuple(windows)
        if key not in self._stacked:
            self._stacked[key] = [
                torch.cat([self._windows[w][s] for w in windows for _ in range(self._batch)])
                for s in range(len(self._windows[0]))
            ]
        self._features = self._stacked[key]

    def feature(self, path: str) -> torch.Tensor | None:
        """The current features for the motion module at `path`, as its attention sees its input:
        (batch·h·w, frames, channels)."""
        if self._windows is None:
            return None
        if self._features is None:
            raise RuntimeError("CameraCtrl: a motion module ran before the context windows it sees were named")
        f = self._features[feature_index(path, len(self._features))]
        b, c, n, h, w = f.shape
        return f.permute(0, 3, 4, 2, 1).reshape(b * h * w, n, c)

    def install(self, unet: nn.Module) -> Installed:
        """Put the conditioning processors on `unet`'s motion modules; `Installed.remove()` restores the ones
        that were there."""
        previous = {}
        for path, merge in zip(self.paths, self.merges):
            try:
                attn = unet.get_submodule(path)
            except AttributeError:
                raise ValueError(
                    f"this CameraCtrl conditions the motion module at {path!r}, which the motion UNet "
                    f"does not have: CameraCtrl needs the AnimateDiff v3 motion module"
                ) from None
            if attn.to_q.in_features != merge.in_features:
                raise ValueError(
                    f"this CameraCtrl's {path} is {merge.in_features} wide, the motion module's "
                    f"attention {attn.to_q.in_features}: a different base model or motion module"
                )
            previous[path] = attn.processor
            attn.set_processor(PoseConditionedProcessor(self, path, merge, attn.processor))
        return Installed(unet, previous)


class Installed:
    def __init__(self, unet, previous: dict):
        self.unet, self.previous = unet, previous

    def remove(self):
        for path, processor in self.previous.items():
            self.unet.get_submodule(path).set_processor(processor)
        self.previous = {}


class PoseConditionedProcessor:
    """CameraCtrl's query and key/value conditioning in front of the attention processor that was there.

    A plain object, not a module: the merge layer stays CameraCtrl's own and the UNet's state dict does not change.
    """

    def __init__(self, owner: CameraCtrl, path: str, merge: nn.Linear, inner):
        self.owner, self.path, self.merge, self.inner = owner, path, merge, inner

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        pose = self.owner.feature(self.path)
        if pose is not None:
            if encoder_hidden_states is not None:
                raise ValueError("CameraCtrl conditions temporal self-attention only")
            merged = self.merge(hidden_states + pose.to(hidden_states.dtype))
            hidden_states = merged * self.owner._scale + hidden_states
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
