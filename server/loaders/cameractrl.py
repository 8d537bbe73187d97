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

from .files import WEIGHT_SUFFIXES, CheckpointError
from .sources import resolve_source

SECTIONS = ("pose_encoder_state_dict", "attention_processor_state_dict")


def cameractrl_state_dicts(source, weight_name=None) -> tuple[dict, dict]:
    """(pose_encoder_state_dict, attention_processor_state_dict), fp32 on the CPU, read safely."""
    import torch

    kind, where = resolve_source(source, weight_name)
    if kind != "file":
        raise CheckpointError(
            f"{where}: expected a CameraCtrl checkpoint file (CameraCtrl.ckpt), got a folder or "
            f"hub repo; name the file (e.g. hehao13/CameraCtrl/CameraCtrl.ckpt)"
        )
    suffix = where.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            flat = load_file(str(where), device="cpu")
        except Exception as e:
            raise CheckpointError(f"{where}: not a readable .safetensors file ({type(e).__name__}: {e})") from e
        data = {s: {k[len(s) + 1 :]: v for k, v in flat.items() if k.startswith(s + ".")} for s in SECTIONS}
    elif suffix in WEIGHT_SUFFIXES:
        try:
            data = torch.load(str(where), map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"{where}: cannot be read as a weights-only torch checkpoint ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from e
    else:
        raise CheckpointError(f"{where}: unsupported file type {suffix or '(none)'}")
    if not isinstance(data, dict) or any(not isinstance(data.get(s), dict) or not data[s] for s in SECTIONS):
        found = sorted(data)[:8] if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{where}: expected a CameraCtrl checkpoint with {' and '.join(SECTIONS)}; found {found}")
    return tuple({k: v.float() for k, v in data[s].items() if isinstance(v, torch.Tensor)} for s in SECTIONS)


def load_camera_control(source, config=None, weight_name=None):
    """A CameraCtrl model (server/engine/cameractrl.py: pose encoder + qkv_merge layers), fp32 on the CPU.
    Every tensor of the file is used; a key or shape the layout does not have is a CheckpointError."""
    from ..engine.cameractrl import CameraCtrl

    encoder_sd, attention_sd = cameractrl_state_dicts(source, weight_name)
    try:
        return CameraCtrl.from_state_dicts(encoder_sd, attention_sd)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{source}: not the CameraCtrl layout (pose encoder + qkv_merge per motion module "
            f"attention): {str(e).splitlines()[0]}"
        ) from e
