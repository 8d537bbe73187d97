"""Lean loading: models built directly in their target dtype, the motion UNet assembled without a copy, and the
file hashes of the manifest cached per file version."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from test_cameractrl import models as cameractrl_models  # noqa: F401  (a fixture)

from server import loaders
from server.engine.store import ModelStore, motion_unet
from server.loaders import ModelConfig
from server.loaders.hashes import FileHashes


@pytest.fixture(scope="module")
def config(tiny_models):
    return ModelConfig.load(tiny_models / "models.toml")


def same_weights(built, reference):
    """Every tensor of `built` equals the one of the same name in `reference`, bit for bit, dtype included."""
    a, b = built.state_dict(), reference.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name


LOADERS = {
    "motion_module": loaders.load_motion_adapter,
    "controlnet": loaders.load_controlnet,
    "sparsectrl": loaders.load_sparsectrl,
    "ip_adapter": loaders.load_ip_adapter,
    "image_encoder": loaders.load_image_encoder,
}


@pytest.mark.parametrize(
    "kind, name",
    [
        ("motion_module", "v2"),
        ("motion_module", "v2-original"),
        ("controlnet", "depth"),
        ("controlnet", "depth-original"),
        ("sparsectrl", "rgb-original"),
        ("ip_adapter", "ip_adapter_plus"),
        ("ip_adapter", "ip_adapter_bin"),
        ("image_encoder", "vit_h"),
        ("image_encoder", "vit_h_single"),
    ],
)
def test_a_model_built_in_fp16_equals_the_fp32_one_cast(config, kind, name):
    entry = config.get(kind, name)
    half = LOADERS[kind](entry.source, entry.config, dtype=torch.float16)
    full = LOADERS[kind](entry.source, entry.config)
    assert next(full.parameters()).dtype == torch.float32
    same_weights(half, full.half())


@pytest.mark.parametrize("name", ["sd15", "sd15-single"])
def test_a_base_model_built_in_fp16_equals_the_fp32_one_cast(config, name):
    entry = config.get("base", name)
    half = loaders.load_base(entry.source, entry.config, dtype=torch.float16)
    full = loaders.load_base(entry.source, entry.config)
    for part in ("unet", "vae", "text_encoder"):
        same_weights(half[part], full[part].half())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_the_motion_unet_is_diffusers_own_assembly_without_the_copy(config, dtype):
    from diffusers.models import UNetMotionModel

    base, module = config.get("base", "sd15"), config.get("motion_module", "v2-original")
    unet = loaders.load_base(base.source, base.config, dtype=dtype)["unet"]
    adapter = loaders.load_motion_adapter(module.source, module.config, dtype=dtype)
    ours = motion_unet(unet, adapter)
    reference = UNetMotionModel.from_unet2d(unet, adapter).to(dtype)
    same_weights(ours, reference)
    assert ours.conv_in.weight.data_ptr() == unet.conv_in.weight.data_ptr(), "the 2D UNet's weights are shared"
    motion = ours.down_blocks[0].motion_modules[0].proj_in.weight
    assert motion.data_ptr() == adapter.down_blocks[0].motion_modules[0].proj_in.weight.data_ptr()


def test_switching_the_motion_module_reloads_only_it(config):
    store = ModelStore(config, device="cpu", dtype="float16")
    store.pipeline("sd15", "v2")
    before = len(store.loads)
    pipe = store.pipeline("sd15", "v3")
    assert store.loads[before:] == ["motion_module:v3", "pipeline:sd15+v3"]
    assert pipe.unet.dtype == torch.float16 and pipe.vae.dtype == torch.float16
    store.pipeline("sd15", "v2")
    assert store.loads[-1] == "pipeline:sd15+v2" and "motion_module:v2" not in store.loads[before:]


def test_the_hash_cache_is_keyed_by_file_version(tmp_path):
    hashes = FileHashes()
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"a" * 4096)
    first = hashes.get(path)
    stamp = os.stat(path).st_mtime_ns
    path.write_bytes(b"b" * 4096)  # same size; the old mtime put back: the same version
    os.utime(path, ns=(stamp, stamp))
    assert hashes.get(path) == first
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # a changed mtime is a new version: hashed again
    second = hashes.get(path)
    assert second != first and second == FileHashes().get(path)


def test_file_identity_need_not_wait_for_hashes(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(os.urandom(1 << 20))
    entry = loaders.ModelEntry("base", "big", str(path), None)
    quick = loaders.file_identity(entry, wait=False)
    assert quick["sha256"] or quick["sha256_pending"] == ["big.safetensors"]
    full = loaders.file_identity(entry)
    assert "sha256_pending" not in full and len(full["sha256"]["big.safetensors"]) == 64


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_cameractrl_built_in_fp16_equals_the_fp32_one_cast(tmp_path, suffix):
    from safetensors.torch import save_file

    from tests.support import tiny_cameractrl
    from tests.support.tiny_models import UNET_CHANNELS

    path = tiny_cameractrl.write(tmp_path / "cameractrl.ckpt", UNET_CHANNELS)
    if suffix == ".safetensors":  # the same tensors flat, the two state dicts' names as key prefixes
        data = torch.load(path, weights_only=True)
        flat = {f"{s}.{k}": v for s in loaders.cameractrl.SECTIONS for k, v in data[s].items()}
        save_file(flat, str(path.with_suffix(suffix)))
        path = path.with_suffix(suffix)
    half = loaders.load_camera_control(str(path), dtype=torch.float16)
    full = loaders.load_camera_control(str(path))
    assert next(full.parameters()).dtype == torch.float32
    same_weights(half, full.half())


def test_low_vram_stores_unet_ip_adapter_and_image_encoder_in_fp8_and_runs_with_loras_on_cpu(config):
    from server.engine.references import Reference

    fp8 = torch.float8_e4m3fn
    store = ModelStore(config, device="cpu", dtype="float32", low_vram=True)
    pipe = store.pipeline("sd15", "v2")
    block = pipe.unet.down_blocks[0]
    assert block.resnets[0].conv1.weight.dtype == fp8 and block.motion_modules[0].proj_in.weight.dtype == fp8
    store.set_loras(pipe, [("motion_lora", "zoom_in", 1.0), ("lora", "style", 1.0)])
    lora = block.attentions[0].transformer_blocks[0].attn1.to_q
    assert lora.base_layer.weight.dtype == fp8 and lora.lora_A["lora__style"].weight.dtype == torch.float32
    adapter, encoder = store.ip_adapter("ip_adapter_plus")
    assert adapter.layers[0].to_k_ip.weight.dtype == fp8 and adapter.layers[-1].to_v_ip.weight.dtype == fp8
    assert adapter.image_proj.proj_in.weight.dtype == fp8 and adapter.image_proj.layers[0][0].to_kv.weight.dtype == fp8
    assert adapter.image_proj.norm_out.weight.dtype == torch.float32  # norms keep the compute dtype
    attention = encoder.vision_model.encoder.layers[0].self_attn
    assert attention.q_proj.weight.dtype == fp8 and encoder.visual_projection.weight.dtype == fp8
    assert encoder.vision_model.post_layernorm.weight.dtype == torch.float32
    image = np.random.default_rng(3).uniform(0, 255, (40, 52, 3)).astype(np.uint8)

    def generate(weight):
        return pipe.generate(
            prompt="a puppet",
            num_frames=4,
            height=64,
            width=64,
            steps=2,
            generator=torch.Generator().manual_seed(5),
            references=[Reference(adapter, encoder, image, weight=weight)],
        )

    plain, referenced = generate(0.0), generate(1.0)
    assert referenced.shape == plain.shape == (4, 64, 64, 3)
    assert np.abs(referenced.astype(int) - plain).max() > 10  # the fp8 adapter acts
    assert adapter.layers[0].to_k_ip.weight.dtype == fp8  # back to storage after each use


ZEROS_SHA256 = "9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767"  # of 512 MiB of zero bytes


def test_plan_answers_before_a_big_file_is_hashed(tiny_models, tmp_path):
    """/plan lists a hash it does not know yet as pending instead of waiting for it (unless asked to wait: the batch
    CLI's fingerprints); the hash is computed once, in the background, and later answers have it."""
    from fastapi.testclient import TestClient
    from helpers import tiny_spec

    from server.api import Settings, create_app

    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(1 << 29)  # sparse: no disk, but 512 MiB to read and hash (seconds on this machine)
    toml = tiny_models / "models_big_base.toml"
    toml.write_text((tiny_models / "models.toml").read_text() + f'\n[base.big]\nsource = "{big}"\n')
    settings = Settings(models=ModelConfig.load(toml), data_dir=tmp_path / "jobs")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8420") as client:
        first = client.post("/plan", json=tiny_spec(base="big"))
        assert first.status_code == 200, first.text
        assert first.json()["base"]["sha256"] == {} and first.json()["base"]["sha256_pending"] == ["big.safetensors"]
        waited = client.post("/plan?hashes=wait", json=tiny_spec(base="big")).json()["base"]
        assert waited["sha256"] == {"big.safetensors": ZEROS_SHA256} and "sha256_pending" not in waited
        again = client.post("/plan", json=tiny_spec(base="big")).json()["base"]
        assert again["sha256"] == waited["sha256"] and "sha256_pending" not in again
        bad = client.post("/plan?hashes=later", json=tiny_spec(base="big"))
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "hashes"


def test_hashes_kept_in_the_data_folder_survive_a_restart_per_file_version(tmp_path):
    kept = tmp_path / "data" / "file_hashes.json"
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"a" * 4096)
    before = FileHashes()
    before.keep_in(kept)
    digest = before.get(path)
    stamp = os.stat(path).st_mtime_ns
    path.write_bytes(b"b" * 4096)  # same size, the old mtime put back: the same version, so not read again
    os.utime(path, ns=(stamp, stamp))
    restarted = FileHashes()
    restarted.keep_in(kept)
    assert restarted.get(path) == digest
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))  # a new version: hashed again, and kept
    assert restarted.get(path) == FileHashes().get(path) != digest
    again = FileHashes()
    again.keep_in(kept)
    assert again.get(path) == restarted.get(path)
    kept.write_text("not json")
    broken = FileHashes()
    broken.keep_in(kept)  # an unreadable file is ignored: the hash is computed again
    assert broken.get(path) == restarted.get(path)


def test_low_vram_stores_cameractrl_in_fp8_and_a_camera_job_runs_on_cpu(cameractrl_models):
    """CameraCtrl's pose encoder and qkv_merge layers stored in float8 like the IP-Adapter: `encode` feeds the
    encoder the compute dtype (not its first weight's, float8), and the camera still steers the frames."""
    from test_camera_motion import make_path, orbit
    from test_cameractrl import generate, poses, small

    fp8 = torch.float8_e4m3fn
    store = ModelStore(ModelConfig.load(cameractrl_models), device="cpu", dtype="float32", low_vram=True)
    pipe = store.pipeline("sd15", "v3")
    store.set_loras(pipe, [])
    cc = store.camera_control("cameractrl")
    layers = [m for m in cc.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    norms = [m for m in cc.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(layers) == 86 and len(norms) == 16  # the tiny encoder's convs, attentions and 20 qkv_merge layers
    assert {m.weight.dtype for m in layers} == {fp8} and {m.weight.dtype for m in norms} == {torch.float32}
    assert cc.encoder.encoder_down_attention_blocks[0][0].attention_blocks[0].pos_encoder.pe.dtype == torch.float32
    path = small(make_path(orbit, frames=4))
    features = cc.encode(poses(cc, path).window_input([0, 1, 2, 3]))
    assert {f.dtype for f in features} == {torch.float32}
    still, moving = (generate(pipe, camera=poses(cc, path, scale=scale)) for scale in (0.0, 1.0))
    assert moving.shape == still.shape == (4, 64, 64, 3)
    assert np.abs(moving.astype(int) - still).max() > 10  # the fp8 CameraCtrl acts
    assert {m.weight.dtype for m in layers} == {fp8}  # back to storage after each use
