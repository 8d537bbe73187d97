"""Loading every model file format the server accepts, one module per format family. No bpy, no FastAPI.

`sources` is the one definition of what a model source is; `config` maps the names of a model config TOML to
sources. Every loader returns objects on the CPU in the dtype asked for (float32 by default), built without a
random initialisation, and raises `CheckpointError` naming the file and what was expected. Formats and key
layouts: docs/CONVENTIONS.md.
"""

from .cameractrl import cameractrl_state_dicts, load_camera_control
from .config import DEFAULT_CONFIG, KINDS, ModelConfig, ModelEntry, UnknownModel, file_identity
from .controlnet import load_controlnet
from .files import WEIGHT_SUFFIXES, CheckpointError, classify, read_state_dict
from .ip_adapter import load_image_encoder, load_ip_adapter
from .lora import image_lora_source
from .motion import convert_motion_lora, load_motion_adapter, motion_adapter_info, motion_lora_state_dict
from .sd15 import load_base
from .sources import CONFIGS, is_hub_source, resolve_source
from .sparsectrl import load_sparsectrl
from .vae import load_vae

__all__ = [
    "CONFIGS",
    "DEFAULT_CONFIG",
    "KINDS",
    "WEIGHT_SUFFIXES",
    "CheckpointError",
    "ModelConfig",
    "ModelEntry",
    "UnknownModel",
    "cameractrl_state_dicts",
    "classify",
    "convert_motion_lora",
    "file_identity",
    "image_lora_source",
    "is_hub_source",
    "load_base",
    "load_camera_control",
    "load_controlnet",
    "load_image_encoder",
    "load_ip_adapter",
    "load_motion_adapter",
    "load_sparsectrl",
    "load_vae",
    "motion_adapter_info",
    "motion_lora_state_dict",
    "read_state_dict",
    "resolve_source",
]
