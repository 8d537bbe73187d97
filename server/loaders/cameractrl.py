"""CameraCtrl checkpoints: the public `CameraCtrl.ckpt` layout of hehao13/CameraCtrl.

A torch checkpoint holding two state dicts (and possibly step counters):
- `pose_encoder_state_dict`: the camera pose encoder (server/engine/cameractrl_encoder.py), keys
  `encoder_conv_in.*`, `encoder_down_conv_blocks.{scale}.{block}.{in_conv,block1,block2}.*`,
  `encoder_down_attention_blocks.{scale}.{block}.{attention_blocks.0.{to_q,to_k,to_v,to_out.0,pos_encoder.pe},
  norms.0, ff.net.{0.proj,2}, ff_norm}.*`;
- `attention_processor_state_dict`: one `qkv_merge` linear layer per motion module of the v3 UNet,
  `{down_blocks.0-3.motion_modules.0-1 | up_blocks.0-3.motion_modules.0-2}.temporal_transformer.transformer_blocks.0.
  attention_blocks.0.processor.qkv_merge.{weight,bias}` (40 tensors).
A `.safetensors` file holding the same tensors with the two names as key prefixes (`pose_encoder_state_dict.…`)
is accepted too.
"""

from __future__ import annotations

from .files import WEIGHT_SUFFIXES, CheckpointError, _torch_load, read_state_dict
from .single_file import cast
from .sources import resolve_source

SECTIONS = ("pose_encoder_state_dict", "attention_processor_state_dict")


def cameractrl_state_dicts(source, weight_name=None, dtype=None) -> tuple[dict, dict]:
    """(pose_encoder_state_dict, attention_processor_state_dict) on the CPU in `dtype` (float32 when None), read
    safely: `.ckpt` memory-mapped and weights-only, each tensor cast on its own (none copied twice)."""
    import torch

    kind, where = resolve_source(source, weight_name)
    if kind != "file":
        raise CheckpointError(
            f"{where}: expected a CameraCtrl checkpoint file (CameraCtrl.ckpt), got a folder or "
            f"hub repo; name the file (e.g. hehao13/CameraCtrl/CameraCtrl.ckpt)"
        )
    suffix = where.suffix.lower()
    if suffix == ".safetensors":
        flat = read_state_dict(where)
        data = {s: {k[len(s) + 1 :]: v for k, v in flat.items() if k.startswith(s + ".")} for s in SECTIONS}
    elif suffix in WEIGHT_SUFFIXES:
        if not where.is_file():
            raise CheckpointError(f"{where}: file not found")
        try:
            data = _torch_load(where)
        except Exception as e:
            raise CheckpointError(
                f"{where}: cannot be read as a weights-only torch checkpoint ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from e
    else:
        raise CheckpointError(f"{where}: unsupported file type {suffix or '(none)'}")
    if not isinstance(data, dict) or any(not isinstance(data.get(s), dict) or not data[s] for s in SECTIONS):
        found = sorted(map(str, data))[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{where}: expected a CameraCtrl checkpoint with {' and '.join(SECTIONS)}; found {found}")
    return tuple(cast({k: v for k, v in data[s].items() if isinstance(v, torch.Tensor)}, dtype) for s in SECTIONS)


def load_camera_control(source, config=None, weight_name=None, dtype=None):
    """A CameraCtrl model (server/engine/cameractrl.py: pose encoder + qkv_merge layers) in `dtype` (float32 when
    None) on the CPU, built on the meta device and given the file's tensors. Every tensor of the file is used; a key
    or shape the layout does not have is a CheckpointError."""
    from ..engine.cameractrl import CameraCtrl

    encoder_sd, attention_sd = cameractrl_state_dicts(source, weight_name, dtype)
    try:
        return CameraCtrl.from_state_dicts(encoder_sd, attention_sd).eval()
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{source}: not the CameraCtrl layout (pose encoder + qkv_merge per motion module "
            f"attention): {str(e).splitlines()[0]}"
        ) from e
