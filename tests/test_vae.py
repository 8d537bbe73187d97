"""A separate VAE (A1111's "SD VAE", ComfyUI's "Load VAE") on the tiny models: every public layout loads the same
weights, a job decodes and encodes with the chosen VAE, switching it loads nothing else, and broken or foreign
files are refused naming the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fastapi import HTTPException
from helpers import tiny_spec
from test_checkpoints import _fake_hub_repo

from server import loaders as C
from server.api.spec_checks import SpecProblems, check_spec
from server.engine.conditioning import Keyframes
from server.engine.init_video import InitVideo, encode
from server.engine.store import ModelStore
from server.loaders.vae import load_vae
from server.protocol import parse_spec
from tests.support import tiny_vae
from tests.support.original_layout import vae_to_ldm

SIZE, FRAMES = 64, 4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def store(tiny_models):
    return ModelStore(C.ModelConfig.load(tiny_models / "models.toml"), device="cpu", dtype="float32")


def state(model) -> dict:
    return model.state_dict()


def assert_same(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape and torch.equal(a[key], b[key]), key


def entry(store, name):
    return store.config.get("vae", name)


def decoded(vae, latents: torch.Tensor) -> np.ndarray:
    """(1, 4, F, h, w) latents as uint8 frames, decoded directly (not through the pipeline)."""
    with torch.no_grad():
        images = vae.decode(latents[0].transpose(0, 1) / vae.config.scaling_factor).sample
    return ((images / 2 + 0.5).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


# --- the files ---------------------------------------------------------------------------------------------------


def test_the_ldm_conversion_round_trips_the_tiny_and_the_full_size_vae(tiny_models):
    """The test support's diffusers -> LDM writer and diffusers' LDM -> diffusers conversion are inverses, on the
    tiny VAE's weights and on the key set and shapes of SD1.5's full-size VAE (built on the meta device)."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    tiny = load_vae(tiny_models / "vae_diffusers")
    back = convert_ldm_vae_checkpoint(vae_to_ldm(state(tiny), tiny.config, prefix=""), dict(tiny.config))
    assert_same(back, state(tiny))

    config = AutoencoderKL.load_config(str(C.CONFIGS / "sd15" / "vae"))
    with torch.device("meta"):
        full = AutoencoderKL.from_config(config)
    ldm = vae_to_ldm(state(full), config, prefix="")
    assert len(ldm) == 248 and "decoder.up.0.block.0.norm1.weight" in ldm
    assert ldm["quant_conv.weight"].shape == (8, 8, 1, 1)
    back = convert_ldm_vae_checkpoint(ldm, dict(config))
    assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in state(full).items()}


def test_every_layout_loads_the_same_weights_and_decodes_alike(store, tiny_models, tmp_path):
    """Bare LDM keys (.safetensors), a "state_dict" .ckpt with discriminator and EMA weights beside it, a
    first_stage_model. .pt, one file in the diffusers layout and the diffusers folder: one set of weights, other
    than the base's own VAE."""
    import shutil

    folder = load_vae(entry(store, "tiny-ft-diffusers").source)
    one_file = tmp_path / "sd-vae-ft-mse.safetensors"  # the hub repo's weights file, downloaded alone and renamed
    shutil.copyfile(tiny_models / "vae_diffusers" / "diffusion_pytorch_model.safetensors", one_file)
    latents = torch.randn(1, 4, 2, 8, 8, generator=torch.Generator().manual_seed(3))
    sources = [
        (entry(store, n).source, entry(store, n).config) for n in ("tiny-ft", "tiny-ft-ckpt", "tiny-ft-extracted")
    ]
    for source, config in sources + [(one_file, tiny_models / "sd15")]:
        vae = load_vae(source, config)
        assert_same(state(vae), state(folder))
        assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in vae.parameters())
        assert np.array_equal(decoded(vae, latents), decoded(folder, latents))
    own = C.load_base(tiny_models / "sd15")["vae"]
    assert not np.array_equal(decoded(own, latents), decoded(folder, latents))
    half = load_vae(entry(store, "tiny-ft").source, entry(store, "tiny-ft").config, dtype=torch.float16)
    assert_same(state(half), {k: v.half() for k, v in state(folder).items()})


def test_a_full_size_vae_file_loads_in_fp16_with_the_shipped_config(tmp_path):
    """vae-ft-mse-840000-ema-pruned's layout at full size (placeholder weights, float32 as published) with SD1.5's
    config shipped in server/configs: 83.7M parameters, built in float16, each the file's own value cast."""
    from diffusers import AutoencoderKL
    from fullsize import materialize
    from safetensors.torch import save_file

    config = AutoencoderKL.load_config(str(C.CONFIGS / "sd15" / "vae"))
    with torch.device("meta"):
        meta = AutoencoderKL.from_config(config)
    path = tmp_path / "vae-ft-mse-840000-ema-pruned.safetensors"
    save_file(materialize(vae_to_ldm(state(meta), config, prefix=""), torch.float32), path)
    vae = load_vae(path, dtype=torch.float16)
    assert round(sum(p.numel() for p in vae.parameters()) / 1e6, 1) == 83.7
    assert {p.dtype for p in vae.parameters()} == {torch.float16}
    file = C.read_state_dict(path)
    assert torch.equal(
        vae.decoder.up_blocks[0].resnets[0].norm1.weight, file["decoder.up.3.block.0.norm1.weight"].half()
    )
    assert torch.equal(
        vae.encoder.mid_block.attentions[0].to_q.weight, file["encoder.mid.attn_1.q.weight"][:, :, 0, 0].half()
    )


def test_a_hub_id_loads_from_the_cache(tiny_models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    hf_home = tmp_path / "hf"
    _fake_hub_repo(hf_home, "stabilityai/sd-vae-ft-mse", {p.name: p for p in (tiny_models / "vae_diffusers").iterdir()})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert_same(state(load_vae("stabilityai/sd-vae-ft-mse")), state(load_vae(tiny_models / "vae_diffusers")))


def test_a_folder_of_vaes_is_picked_up_by_stem(tiny_models, tmp_path):
    """`[folders] vae = [...]` lists an A1111 models/VAE or ComfyUI models/vae folder, files and diffusers folders."""
    import shutil

    folder = tmp_path / "models" / "VAE"
    folder.mkdir(parents=True)
    shutil.copyfile(tiny_models / tiny_vae.NAMES["tiny-ft"], folder / "vae-ft-mse-840000-ema-pruned.safetensors")
    shutil.copyfile(tiny_models / tiny_vae.NAMES["tiny-ft-extracted"], folder / "orangemix.vae.pt")
    shutil.copytree(tiny_models / "vae_diffusers", folder / "sd-vae-ft-mse")
    (folder / "notes.txt").write_text("not a model")
    toml = tmp_path / "models.toml"
    toml.write_text('[folders]\nvae = ["models/VAE"]\n')
    config = C.ModelConfig.load(toml)
    assert config.names("vae") == ["orangemix.vae", "sd-vae-ft-mse", "vae-ft-mse-840000-ema-pruned"]
    assert config.get("vae", "orangemix.vae").source == str(folder / "orangemix.vae.pt")


def _save(sd: dict, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, path)
    return path


def _truncated(path):
    path.write_bytes(path.read_bytes()[:-1000])  # a download cut short
    return path


def bare_keys(tiny_models) -> dict:
    return C.read_state_dict(tiny_models / tiny_vae.NAMES["tiny-ft"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda sd, p: _truncated(_save(sd, p)), "not a readable .safetensors file"),
        (lambda sd, p: _save({k: v for k, v in sd.items() if k != "decoder.conv_out.bias"}, p), "decoder.conv_out"),
        (lambda sd, p: _save({**sd, "decoder.up.4.block.0.conv1.weight": torch.zeros(8, 8, 3, 3)}, p), "up.4"),
        (
            lambda sd, p: _save({**sd, "decoder.conv_in.weight": torch.zeros(16, 4, 1, 1)}, p),
            "do not have the shapes",
        ),
        (
            lambda sd, p: _save({**sd, "encoder.conv_out.weight": torch.zeros(32, 16, 3, 3)}, p),
            "16 latent channels",
        ),
        (lambda sd, p: _save({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}, p), "expected an SD1.5 VAE"),
    ],
    ids=["truncated", "missing key", "extra level", "wrong shape", "16 latent channels", "not a vae"],
)
def test_broken_or_foreign_files_name_the_file(store, tiny_models, tmp_path, make, message):
    path = make(bare_keys(tiny_models), tmp_path / "my-vae.safetensors")
    with pytest.raises(C.CheckpointError, match=message) as info:
        load_vae(path, tiny_models / "sd15")
    assert str(path) in str(info.value)


def test_a_whole_checkpoint_or_a_motion_module_is_not_a_vae(tiny_models):
    with pytest.raises(C.CheckpointError, match="whole Stable Diffusion checkpoint") as info:
        load_vae(tiny_models / "sd15.safetensors", tiny_models / "sd15")
    assert "sd15.safetensors" in str(info.value)
    with pytest.raises(C.CheckpointError, match="AnimateDiff motion module") as info:
        load_vae(tiny_models / "mm_sd_v15_v2.ckpt", tiny_models / "sd15")
    assert "mm_sd_v15_v2.ckpt" in str(info.value)
    with pytest.raises(C.CheckpointError, match="expected an SD1.5 VAE.*MotionAdapter"):
        load_vae(tiny_models / "motion_v2")


def test_an_sdxl_vae_is_refused_for_an_sd15_base(store, tiny_models, tmp_path):
    """SDXL's VAE has SD1.5's architecture; its scaling factor (0.13025) tells it apart, and a job's pipeline
    refuses it naming the folder, and does not keep it (the API refuses it earlier: tests/test_vae_fit.py)."""
    import shutil

    sdxl = tmp_path / "sdxl-vae"
    shutil.copytree(tiny_models / "vae_diffusers", sdxl)
    config = json.loads((sdxl / "config.json").read_text())
    (sdxl / "config.json").write_text(json.dumps({**config, "scaling_factor": 0.13025}))
    toml = tmp_path / "models.toml"
    toml.write_text(f'[vae.sdxl]\nsource = "{sdxl}"\n')
    other = ModelStore(C.ModelConfig.load(toml), device="cpu", dtype="float32")
    store.pipeline("sd15", "v2")
    other._cache.update({k: v for k, v in store._cache.items() if k[0] in ("base", "motion_module")})  # no reload
    with pytest.raises(C.CheckpointError, match="SDXL") as info:
        other.pipeline("sd15", "v2", "sdxl")
    assert str(sdxl) in str(info.value)
    assert ("vae", "sdxl") not in other._cache and "vae:sdxl" not in other.loaded()  # a refused VAE is not kept
    assert other.pipeline("sd15", "v2").vae is other._cache[("base", "sd15")]["vae"]


# --- jobs --------------------------------------------------------------------------------------------------------


def generate(pipe, **kw):
    """Frames of a short text-to-video job and the latents the pipeline decoded them from."""
    seen = {}
    decode = pipe.decode

    def capture(latents, *args, **kwargs):
        seen["latents"] = latents.clone()
        return decode(latents, *args, **kwargs)

    pipe.decode = capture
    try:
        frames = pipe.generate(
            prompt="a marionette",
            negative_prompt="blurry",
            num_frames=FRAMES,
            height=SIZE,
            width=SIZE,
            steps=2,
            guidance=1.0,
            generator=torch.Generator().manual_seed(5),
            **kw,
        )
    finally:
        del pipe.decode
    return frames, seen["latents"]


def test_switching_the_vae_loads_only_the_vae_and_decodes_with_it(store):
    pipe = store.pipeline("sd15", "v2")
    store.set_loras(pipe, [])
    own = pipe.vae
    frames_own, latents_own = generate(pipe)

    before = len(store.loads)
    assert store.pipeline("sd15", "v2", "tiny-ft") is pipe
    assert store.loads[before:] == ["vae:tiny-ft"]  # no base, no motion module, no pipeline assembly
    chosen = pipe.vae
    assert chosen is not own and "vae:tiny-ft" in store.loaded()
    frames, latents = generate(pipe)
    assert torch.equal(latents, latents_own)  # the VAE takes no part in text-to-video denoising
    assert not np.array_equal(frames, frames_own)
    e = entry(store, "tiny-ft")
    assert np.abs(frames.astype(int) - decoded(load_vae(e.source, e.config), latents).astype(int)).max() <= 1

    before = len(store.loads)
    assert store.pipeline("sd15", "v2").vae is own
    assert store.pipeline("sd15", "v2", "tiny-ft").vae is chosen
    assert store.loads[before:] == []
    assert np.array_equal(generate(pipe)[0], frames)


def test_video_to_video_and_keyframes_encode_with_the_chosen_vae(store):
    """Strength 0 gives back the render through the chosen VAE (its encoder and decoder), not the base's; RGB
    SparseCtrl keyframes are encoded by it too."""
    ys, xs = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    render = torch.stack([torch.stack([xs, ys, (xs + ys + f / FRAMES) % 1]) for f in range(FRAMES)])
    pipe = store.pipeline("sd15", "v2", "tiny-ft")
    store.set_loras(pipe, [])
    chosen = pipe.vae
    frames, _ = generate(pipe, init=InitVideo(render, 0.0))
    with torch.no_grad():
        round_trip = pipe.decode(encode(chosen, render))
    assert np.abs(frames.astype(int) - round_trip.astype(int)).max() <= 1
    keyframes = Keyframes(store.sparsectrl("rgb"), render[:1], [0], 1.0)
    with torch.no_grad():
        cond, _ = pipe._sparse_inputs(keyframes, FRAMES, 1, "cpu")
    assert torch.allclose(cond[0, :, 0], encode(chosen, render[:1])[0, :, 0], atol=1e-5)
    own_frames, _ = generate(store.pipeline("sd15", "v2"), init=InitVideo(render, 0.0))
    assert not np.array_equal(own_frames, frames)


def test_unknown_or_missing_vae_is_refused_before_the_job(store, tiny_models, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from server.loaders import hub

    monkeypatch.setattr(hub, "CACHE", tmp_path / "empty-hub-cache")  # whatever this machine has downloaded
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SpecProblems) as unknown:
        check_spec(store.config, parse_spec(tiny_spec(vae="no-such-vae")))
    assert [field for field, _ in unknown.value.errors] == ["vae"]
    assert unknown.value.details[0]["name"] == "no-such-vae" and "tiny-ft" in unknown.value.details[0]["known"]

    toml = tmp_path / "models.toml"
    toml.write_text(
        f'[base.sd15]\nsource = "{tiny_models}/sd15"\n[motion_module.v2]\nsource = "{tiny_models}/motion_v2"\n'
        f'[vae.gone]\nsource = "{tmp_path}/vae-ft-mse-840000-ema-pruned.safetensors"\n'
        '[vae.mse]\nsource = "stabilityai/sd-vae-ft-mse"\n'
    )
    config = C.ModelConfig.load(toml)
    check_spec(config, parse_spec(tiny_spec()))  # the base and motion module are here
    for name in ("gone", "mse"):  # a local file that is not there; a hub id not in the cache
        with pytest.raises(HTTPException) as info:
            check_spec(config, parse_spec(tiny_spec(vae=name)))
        assert info.value.status_code == 409
        assert info.value.detail["kind"] == "vae" and info.value.detail["name"] == name
    assert info.value.detail["downloadable"] is True


def test_a_served_job_with_a_vae_records_it_and_loads_only_it(tiny_models, tmp_path):
    from fastapi.testclient import TestClient
    from helpers import read_events

    from server.api import Settings, create_app

    settings = Settings(models=C.ModelConfig.load(tiny_models / "models.toml"), data_dir=tmp_path / "jobs")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8420") as client:
        done = []
        for vae in ("", "tiny-ft-ckpt", "tiny-ft-ckpt"):
            r = client.post("/jobs", json=tiny_spec(vae=vae, steps=1, frames=2))
            assert r.status_code == 202, r.text
            with client.stream("GET", f"/jobs/{r.json()['id']}/events") as events:
                done.append((r.json()["id"], read_events(events)[-1]))
        assert [d[1][1] for d in done] == ["done"] * 3
        assert done[1][1][2]["loaded"] == ["vae:tiny-ft-ckpt"] and done[2][1][2]["loaded"] == []
        manifest = client.get(f"/jobs/{done[1][0]}/manifest").json()
        vae = manifest["plan"]["vae"]
        assert vae["name"] == "tiny-ft-ckpt" and list(vae["sha256"]) == ["tiny-ft-mse.ckpt"]
        assert len(vae["sha256"]["tiny-ft-mse.ckpt"]) == 64
        assert client.get(f"/jobs/{done[0][0]}/manifest").json()["plan"]["vae"] is None
        assert client.get(f"/jobs/{done[0][0]}/frames/0").content != client.get(f"/jobs/{done[1][0]}/frames/0").content
