"""Full-size checkpoints in the public layouts (tests/fullsize.py writes them with placeholder weights) load through
the server's own loaders offline with the shipped configs, and the assembled full-size pipelines run a denoising
step on the CPU.

Each test runs its work in a child process (`python -m fullsize_checks TASK`): the child writes the files into a
temporary folder, deletes each one as soon as it is checked, and reports its peak resident memory, which must stay
under MAX_RSS_GB. The children run offline (HF_HUB_OFFLINE=1, an empty Hugging Face home; the single-file SD1.5
loader takes the CLIP tokenizer shipped in server/configs/sd15/tokenizer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MAX_RSS_GB = 12.0

# Published sizes (millions of parameters).
UNET_M, VAE_M, CLIP_M = 859.5, 83.7, 123.1
MOTION_M = {"v1": 417, "v2": 453, "v3": 417, "lightning": 453}
MOTION_LORA_M = 19.3
CONTROLNET_M = 361


def run_child(task: str, tmp_path: Path, timeout: int = 900, **kwargs) -> dict:
    hf_home = tmp_path / "hf"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]),
    )
    args = json.dumps({"root": str(tmp_path / "files"), **kwargs})
    result = subprocess.run(
        [sys.executable, "-m", "fullsize_checks", task, args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-5000:]
    out = json.loads(lines[-1][len("RESULT ") :])
    leftovers = [p for p in (tmp_path / "files").rglob("*") if p.is_file() and p.name != "models.toml"]
    assert not leftovers, leftovers  # every multi-GB file was deleted after use
    assert out["max_rss_gb"] < MAX_RSS_GB, out["max_rss_gb"]
    extra = {k: out[k] for k in ("disk_bytes", "times") if k in out}
    print(f"\n{task} {kwargs}: {out['seconds']} s, peak RSS {out['max_rss_gb']} GB {extra or ''}")
    return out


def m(n: int) -> float:
    return round(n / 1e6, 1)


def assert_keys_complete(keys: dict, buffers_rebuilt=()):
    """No parameter missing from the file, no file key without a place in the model; only buffers the model
    rebuilds itself (the motion modules' sinusoidal position encodings) may be absent."""
    assert keys["missing_params"] == [] and keys["unused"] == [], keys
    assert (
        all(b.endswith(buffers_rebuilt) for b in keys["missing_buffers"])
        if buffers_rebuilt
        else keys["missing_buffers"] == []
    ), keys["missing_buffers"][:5]


def assert_values(values: dict, at_least: int):
    """Every parameter of the loaded model equals the file's tensor the original layout puts there."""
    assert values["n_mismatched"] == 0 and values["n_unchecked_params"] == 0, values
    assert values["checked"] >= at_least, values


@pytest.fixture(scope="module")
def sd15_in_comfyui(tmp_path_factory):
    """The child that writes v1-5-pruned-emaonly.safetensors into a portable ComfyUI's models/checkpoints and loads
    it under the default name sd15 (once for the two tests below), and its Hugging Face home."""
    tmp_path = tmp_path_factory.mktemp("sd15")
    return run_child("base", tmp_path), tmp_path / "hf"


def test_sd15_in_a_comfyui_root_is_served_as_sd15_offline(sd15_in_comfyui):
    """The public SD1.5 file at full size in an artist's ComfyUI (a model root) takes the default name sd15 and
    loads from there with the shipped configs and tokenizer: no network, nothing written to the Hugging Face home."""
    out, hf_home = sd15_in_comfyui
    assert out["served"] == {
        "source": "ComfyUI_windows_portable/ComfyUI/models/checkpoints/v1-5-pruned-emaonly.safetensors",
        "config": None,
        "weight_name": None,
    }
    assert out["tokenizer"] == ["CLIPTokenizer", 49408] and m(out["params"]["unet"]) == UNET_M
    assert not [p for p in hf_home.rglob("*") if p.is_file()]


def test_sd15_single_file(sd15_in_comfyui):
    """v1-5-pruned-emaonly.safetensors (LDM layout) -> UNet 859.5 M, VAE 83.7 M, CLIP 123.1 M, fp32, with the shipped
    sd15 config and its shipped CLIP tokenizer; every key of the three models maps onto the model and
    every value lands where the original layout says."""
    out, _ = sd15_in_comfyui
    assert out["prefixes"] == ["cond_stage_model", "first_stage_model", "model"]
    assert "alphas_cumprod" in out["other_keys"]  # the schedule buffers of the published file are ignored
    assert (m(out["params"]["unet"]), m(out["params"]["vae"]), m(out["params"]["text_encoder"])) == (
        UNET_M,
        VAE_M,
        CLIP_M,
    )
    for part in ("unet", "vae", "text_encoder"):
        assert_keys_complete(out["keys"][part])
    assert_values(out["values"]["unet"], 686)
    assert_values(out["values"]["vae"], 248)
    assert_values(out["values"]["text_encoder"], 196)
    assert out["dtypes"] == ["torch.float32"]
    assert out["tokenizer"] == ["CLIPTokenizer", 49408] and out["scheduler"] == "PNDMScheduler"
    assert out["unet_config"] == {"cross_attention_dim": 768, "attention_head_dim": 8, "sample_size": 64}
    assert out["bytes"] > 2.1e9  # fp16: 1.07 G parameters


def test_motion_modules_v1_v2_v3_and_lightning(tmp_path):
    """mm_sd_v15 (v1: 20 modules, 24 positions, 417 M), mm_sd_v15_v2 (v2: 21 modules with the mid block, 32, 453 M),
    v3_sd15_mm (v3: 20, 32, 417 M; written wrapped in "state_dict") and AnimateDiff-Lightning's diffusers-format file
    (the v2 structure, 453 M): version and frame limit detected from the file, the shipped config chosen from the keys,
    every weight used, only the position encodings dropped (the model rebuilds them)."""
    out = run_child("motion", tmp_path)
    expected = {
        "v1": ("v1", 24, False, 20),
        "v2": ("v2", 32, True, 21),
        "v3": ("v3", 32, False, 20),
        "lightning": ("v2", 32, True, 21),
    }
    for name, (version, frames, mid, modules) in expected.items():
        got = out[name]
        assert got["info"] == {"version": version, "max_frames": frames}, name
        assert (got["max_seq"], got["mid_block"], got["modules"]) == (frames, mid, modules), name
        assert round(got["params"] / 1e6) == MOTION_M[name], (name, got["params"])
        assert got["pe"] == [[1, frames]], name
        assert_keys_complete(got["keys"], buffers_rebuilt=("pos_embed.pe",))
        assert_values(got["values"], 500)
        assert got["dropped"] == (["pos_encoder.pe"] if name != "lightning" else []), name


def test_motion_lora_and_v3_domain_adapter(tmp_path):
    """v2_lora_ZoomIn.ckpt: 19.3 M parameters in 336 tensors, rank 64 on all 21 v2 modules, each pair on a temporal
    attention projection of the right shape. v3_sd15_adapter.ckpt (unprefixed keys): comes back prefixed with
    "unet." so that diffusers loads it (it silently skips unprefixed keys), one pair per spatial attention
    projection (128), shapes matching."""
    out = run_child("loras", tmp_path)
    lora = out["motion_lora"]
    assert lora["raw_all_original"] and lora["rank"] == [64] and lora["modules"] == 21
    assert (lora["tensors"], m(lora["params"])) == (21 * 2 * 4 * 2, MOTION_LORA_M)
    assert lora["landing"] == {"pairs": 168, "problems": []}
    assert abs(lora["bytes"] - 77.4e6) < 0.5e6  # fp32 as published (~74 MiB)
    adapter = out["domain_adapter"]
    assert adapter["raw_unprefixed"] and adapter["type"] == "dict" and adapter["prefixes"] == ["unet"]
    assert adapter["landing"] == {"pairs": adapter["targets"], "problems": []} and adapter["targets"] == 128
    assert abs(adapter["bytes"] - 102.1e6) < 0.5e6  # the published file is 102,134,097 bytes


def test_controlnets_v11_original_and_folders(tmp_path):
    """control_v11f1p_sd15_depth / control_v11p_sd15_normalbae / control_v11p_sd15_openpose, as the original .pth
    (control_model.*) and as the hub's diffusers folders: 361 M each, every key used, values in place."""
    out = run_child("controlnets", tmp_path)
    models = {k: v for k, v in out.items() if k not in ("max_rss_gb", "seconds")}
    assert len(models) == 6
    for name, got in models.items():
        assert round(got["params"] / 1e6) == CONTROLNET_M, name
        assert_keys_complete(got["keys"])
        assert_values(got["values"], 340)
        if name.endswith("original"):
            assert got["all_control_model"], name


def test_sparsectrl_rgb_original(tmp_path):
    """v3_sd15_sparsectrl_rgb.ckpt: the RGB variant is recognised from `controlnet_cond_embedding.weight` (VAE latent
    + mask in: 5 channels), the shipped config builds exactly the file's model, every weight used."""
    out = run_child("sparsectrl", tmp_path)
    assert out["simplified"] and out["conditioning_channels"] == 4 and out["cond_embedding"] == [320, 5, 3, 3]
    assert out["params"] == out["config_params"]
    assert_keys_complete(out["keys"], buffers_rebuilt=("pos_embed.pe",))
    assert_values(out["values"], 450)


@pytest.mark.parametrize("variant", ["v2", "v3"])
def test_full_size_pipeline_one_step(tmp_path, variant):
    """Through ModelStore with a models.toml naming the public files: v2 = SD1.5 single file + mm_sd_v15_v2 +
    ControlNet depth (.pth) + the ZoomIn motion LoRA; v3 = SD1.5 + v3_sd15_mm + SparseCtrl RGB + ControlNet openpose
    (hub folder) + the v3 domain adapter LoRA. One DDIM step at 64x64, 2 frames, guidance 7.5, in bfloat16 on the
    CPU: finite latents, 2 decoded frames, the LoRA on every projection it names."""
    out = run_child("pipeline", tmp_path, variant=variant)
    assert out["frames"] == [[2, 64, 64, 3], "uint8"]
    assert out["steps"] == [[0, 1]] and out["x0_finite"] and out["x0_shape"] == [1, 4, 2, 8, 8]
    kind, params, dtype = out["unet"]
    assert kind == "UNetMotionModel" and dtype == "torch.bfloat16"
    assert round((params - UNET_M * 1e6) / 1e6) == MOTION_M[variant], params
    lora_m = {"v2": MOTION_LORA_M, "v3": 25.5}[variant]  # v3 domain adapter: rank 128 on 128 projections
    assert m(out["lora_params"]) == lora_m
    assert out["motion_modules"] == {"v2": 21, "v3": 20}[variant]
    assert out["controlnet_dtype"] == "torch.bfloat16"
    if variant == "v2":
        assert out["loads"] == [
            "base:sd15",
            "motion_module:v2",
            "pipeline:sd15+v2",
            "motion_lora:zoom_in",
            "controlnet:depth",
        ]
        assert out["lora_wrapped"] == out["lora_wrapped_motion"] == 168
    else:
        assert out["loads"] == [
            "base:sd15",
            "motion_module:v3",
            "pipeline:sd15+v3",
            "lora:v3_adapter",
            "controlnet:openpose",
            "sparsectrl:rgb",
        ]
        assert out["lora_wrapped"] == 128 and out["lora_wrapped_motion"] == 0
    assert out["lora_wrapped_text_encoder"] == 0
