"""SDXL, Pony, SD2, SD3 and Flux files told apart from SD1.5 ones by their headers alone, before anything loads:
detection per family and kind on tiny files in the public key layouts (tests/support/tiny_families.py), every tiny
SD1.5 model the suite builds read as SD1.5, the per-version cache, GET /models `family`, and the 422 at /plan and
POST /jobs naming the field, after which the server runs the next job."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct

import pytest
from fastapi.testclient import TestClient
from helpers import read_events, tiny_spec

from server.api import Settings, create_app
from server.loaders import KINDS, ModelConfig
from server.loaders.family import family_of, file_family
from server.loaders.hashes import FileHashes
from tests.support import tiny_families
from tests.support.tiny_families import FILES


@pytest.fixture(scope="module")
def families(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("families")
    tiny_families.build(root, tiny_models)
    return root


@pytest.fixture(scope="module")
def client(families, tmp_path_factory):
    settings = Settings(models=ModelConfig.load(families / "models.toml"), data_dir=tmp_path_factory.mktemp("jobs"))
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8420") as client:
        yield client


@pytest.mark.parametrize("name", list(FILES))
def test_each_family_and_kind_is_read_from_the_header(families, name):
    kind, family, path = FILES[name]
    assert family_of(families / path) == family, f"{kind} {path}"


def test_every_tiny_sd15_model_of_the_suite_is_sd15(tiny_models):
    """The tiny models are the public SD1.5 layouts (16 wide, so the layout alone decides). Exceptions, by design:
    CLIP vision encoders belong to no family, and a single-file VAE is never told (SDXL's has SD1.5's keys)."""
    from server.loaders.family import entry_family

    config = ModelConfig.load(tiny_models / "models.toml")
    found = {(kind, name): entry_family(config.get(kind, name)) for kind in KINDS for name in config.names(kind)}
    unknown = {key for key, family in found.items() if family is None}
    assert unknown == {("image_encoder", n) for n in config.names("image_encoder")} | {
        ("vae", n) for n in ("tiny-ft", "tiny-ft-ckpt", "tiny-ft-extracted")
    }
    assert {family for family in found.values()} == {"sd15", None}


def test_only_the_safetensors_header_is_read(families, tmp_path):
    """A file cut right after its header (no tensor data at all) still tells its family."""
    whole = (families / FILES["pony_v6"][2]).read_bytes()
    (size,) = struct.unpack("<Q", whole[:8])
    cut = tmp_path / "pony_cut.safetensors"
    cut.write_bytes(whole[: 8 + size])
    assert family_of(cut) == "sdxl"


def test_unreadable_files_have_no_family(tmp_path):
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 64)
    (tmp_path / "huge_header.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a pickle")
    (tmp_path / "empty").mkdir()
    for name in ("garbage.safetensors", "huge_header.safetensors", "garbage.ckpt", "empty", "missing.safetensors"):
        assert family_of(tmp_path / name) is None, name


def test_a_file_is_read_once_per_version(families, tmp_path):
    """Cached per (path, size, mtime): the same version is not read again; a new mtime is a new reading."""
    path = tmp_path / "picked.safetensors"
    shutil.copy(families / FILES["xl_by_metadata"][2], path)
    assert file_family(path) == "sdxl"
    stat = os.stat(path)
    # The same size and mtime, other contents (kohya's metadata now says SD1.5): the cached answer stands.
    path.write_bytes(path.read_bytes().replace(b'"sdxl_base_v1-0"', b'"sd_v1_base_1-0"'))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size and file_family(path) == "sdxl"
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert file_family(path) == "sd15"


def test_families_are_kept_across_restarts(families, tmp_path):
    """A new server on the same data folder reads the families kept there, not the headers again."""
    from server.loaders.family import FamilyCache

    path = tmp_path / "kept.safetensors"
    shutil.copy(families / FILES["pony_style"][2], path)
    kept = tmp_path / "file_families.json"
    first = FamilyCache()
    first.keep_in(kept)
    first.put(FileHashes.version(path), "flux")  # a family no header read would give: proof it came from the file
    second = FamilyCache()
    second.keep_in(kept)
    assert second.get(FileHashes.version(path)) == (True, "flux")
    path.touch()  # a new version: its old row is dropped when it is read
    second.put(FileHashes.version(path), "sdxl")
    assert [row[3] for row in json.loads(kept.read_text()) if row[0] == str(path)] == ["sdxl"]


def test_models_lists_each_family(client):
    answer = client.get("/models", headers={}).json()
    families = {(kind, item["name"]): item["family"] for kind in answer for item in answer[kind]}
    for name, (kind, family, _) in FILES.items():
        assert families[(kind, name)] == family, name
    for name, (kind, _) in tiny_families.SD15.items():
        assert families[(kind, name)] == ("sd15" if kind not in ("image_encoder", "vae") else None), name
    assert all(set(item) >= {"name", "available", "family"} for kind in answer for item in answer[kind])


REFUSED = [  # (spec changes, field, words the message must hold)
    (
        {"base": "pony_v6"},
        "base",
        "pony_v6 is an SDXL checkpoint; Marionette runs SD1.5 checkpoints — pick an SD1.5 one",
    ),
    ({"base": "flux1-dev"}, "base", "flux1-dev is a Flux checkpoint"),
    ({"base": "v2-1_768"}, "base", "v2-1_768 is an SD2 checkpoint"),
    ({"base": "sd3_medium"}, "base", "sd3_medium is an SD3 checkpoint"),
    (
        {"loras": [{"name": "style", "weight": 0.5}, {"name": "pony_style", "weight": 0.8}]},
        "loras[1].name",
        "pony_style is an SDXL LoRA; Marionette runs SD1.5 LoRAs",
    ),
    (
        {"controlnets": [{"kind": "depth", "model": "xl_depth"}]},
        "controlnets[0].model",
        "xl_depth is an SDXL ControlNet",
    ),
    ({"vae": "flux_ae"}, "vae", "flux_ae is an SD3/Flux VAE; Marionette runs SD1.5 VAEs"),
    ({"vae": "sdxl_vae_diffusers"}, "vae", "an SDXL VAE (scaling 0.13025) does not fit this SD1.5 checkpoint"),
    ({"motion_module": "hotshot_xl"}, "motion_module", "hotshot_xl is an SDXL motion module"),
    ({"references": [{"model": "ip_adapter_sdxl"}]}, "references[0].model", "ip_adapter_sdxl is an SDXL IP-Adapter"),
    ({"prompt": "a marionette, embedding:sd2_neg"}, "prompt", "sd2_neg is an SD2 embedding"),
    (
        {"negative_prompt": "blurry, SD2_NEG"},
        "negative_prompt",
        "'SD2_NEG' in this prompt is the embedding sd2_neg, an SD2 one",
    ),
    ({"prompts": [{"frame": 0, "prompt": "sd2_neg"}]}, "prompts[0].prompt", "the embedding sd2_neg, an SD2 one"),
]


@pytest.mark.parametrize("change, field, words", REFUSED, ids=[r[1] + ":" + str(r[0])[:30] for r in REFUSED])
def test_plan_refuses_another_family_naming_the_field(client, change, field, words):
    r = client.post("/plan", json=tiny_spec(**change))
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [{"field": field, "message": r.json()["detail"][0]["message"]}]
    assert words in r.json()["detail"][0]["message"]


def test_every_problem_comes_back_at_once_and_unknown_families_pass(client):
    spec = tiny_spec(base="pony_v6", motion_module="mm_sdxl", loras=[{"name": "flux_kohya", "weight": 1.0}])
    r = client.post("/plan", json=spec)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["detail"]] == ["base", "motion_module", "loras[0].name"]
    # SD1.5 ones, a VAE whose family no header tells (SDXL's has SD1.5's keys), an SD1.5 embedding used by name, an
    # SDXL embedding (its clip_l half is read, as ComfyUI does)
    ok = tiny_spec(
        loras=[{"name": "style", "weight": 0.5}],
        vae="tiny-ft",
        prompt="a marionette, embedding:pony_neg",
        negative_prompt="EasyNegative, blurry",
    )
    assert client.post("/plan", json=ok).status_code == 200


def test_a_job_on_an_sdxl_checkpoint_is_refused_and_the_next_job_runs(client):
    r = client.post("/jobs", json=tiny_spec(base="pony_v6", steps=1, frames=2))
    assert r.status_code == 422 and "pony_v6 is an SDXL checkpoint" in r.text
    r = client.post("/jobs", json=tiny_spec(loras=[{"name": "xl_diffusers", "weight": 1.0}], steps=1, frames=2))
    assert r.status_code == 422 and "loras[0].name" in r.text
    r = client.post("/jobs", json=tiny_spec(steps=1, frames=2))
    assert r.status_code == 202, r.text
    with client.stream("GET", f"/jobs/{r.json()['id']}/events") as events:
        assert read_events(events)[-1][1] == "done"
    assert client.get("/health").status_code == 200


def test_the_full_size_sd15_layouts_are_sd15_by_their_widths():
    """The public SD1.5 files at full size (shapes of meta models from the shipped configs, in the original key
    layouts tests/fullsize.py writes): SD1.5, and their 768-wide cross-attention alone says so."""
    import fullsize
    from diffusers import AutoencoderKL, ControlNetModel, MotionAdapter, SparseControlNetModel, UNet2DConditionModel

    from server.loaders import CONFIGS
    from server.loaders.family import family_of_keys
    from tests.support import original_layout as ldm

    def shapes(sd):
        return {k: tuple(v.shape) for k, v in sd.items()}

    unet = fullsize.meta_model(UNet2DConditionModel, CONFIGS / "sd15", "unet")
    vae = fullsize.meta_model(AutoencoderKL, CONFIGS / "sd15", "vae")
    clip = fullsize.meta_clip(CONFIGS / "sd15")
    checkpoint = {
        **ldm.unet_to_ldm(unet.state_dict(), unet.config),
        **ldm.vae_to_ldm(vae.state_dict(), vae.config),
        **ldm.clip_to_ldm(clip.state_dict(), clip.config.max_position_embeddings),
    }
    assert family_of_keys(shapes(checkpoint)) == "sd15"
    cross = {k.removeprefix("model.diffusion_model."): v for k, v in shapes(checkpoint).items() if "attn2.to_k" in k}
    assert family_of_keys(cross) == "sd15"  # keys of no known layout: the width decides
    controlnet = fullsize.meta_model(ControlNetModel, CONFIGS / "controlnet_sd15")
    assert family_of_keys(shapes(ldm.controlnet_to_ldm(controlnet.state_dict(), controlnet.config))) == "sd15"
    for version in ("v1", "v2", "v3"):
        adapter = fullsize.meta_model(MotionAdapter, CONFIGS / f"motion_adapter_{version}")
        assert family_of_keys(shapes(ldm.motion_to_original(adapter.state_dict()))) == "sd15", version
    # diffusers layouts: AnimateDiff-Lightning's single file, a SparseCtrl file, a motion LoRA; their temporal
    # self-attention `attn2.to_k` is 1280 wide at the deep levels, SDXL's cross-attention width
    assert family_of_keys(shapes(adapter.state_dict())) == "sd15"
    sparse = fullsize.meta_model(SparseControlNetModel, CONFIGS / "sparsectrl_rgb")
    assert family_of_keys(shapes(sparse.state_dict())) == "sd15"
    lora = {
        f"unet.{k[: -len('.proj_in.weight')]}.transformer_blocks.0.attn2.processor.to_k_lora.down.weight": (64, c[0])
        for k, c in shapes(adapter.state_dict()).items()
        if k.endswith("motion_modules.0.proj_in.weight")
    }
    assert 1280 in {v[1] for v in lora.values()} and family_of_keys(lora) == "sd15"
    # CameraCtrl.ckpt and ip-adapter-plus_sd15 at full size (tests/support/fullsize_adapters.py's layouts)
    from tests.support import tiny_cameractrl, tiny_ip_adapter

    sections = {"pose_encoder_state_dict": tiny_cameractrl.encoder_layout()}
    sections["attention_processor_state_dict"] = tiny_cameractrl.attention_layout()
    for layout in (sections, tiny_ip_adapter.plus_layout()):
        assert family_of_keys({f"{s}.{k}": v for s, part in layout.items() for k, v in part.items()}) == "sd15"
    # v3_sd15_adapter.ckpt's keys (`….attn2.processor.to_k_lora.down.weight`), cross-attention ones only
    adapter = {
        re.sub(r"\.(to_k)$", r".processor.\1_lora", name) + ".down.weight": (64, fan_in)
        for name, (fan_in, _) in fullsize.adapter_lora_targets().items()
        if name.endswith("attn2.to_k")
    }
    assert len(adapter) == 16 and family_of_keys(adapter) == "sd15"


def test_an_unknown_name_is_answered_with_the_usable_names_only(client):
    r = client.post("/plan", json=tiny_spec(base="nope", controlnets=[{"kind": "depth", "model": "nope"}]))
    assert r.status_code == 422
    known = {item["field"]: item["known"] for item in r.json()["detail"]}
    assert known == {"base": ["sd15"], "controlnets[0].model": ["depth"]}  # no pony_v6, flux1-dev, xl_canny, ...


def test_comfy_prompts_use_embeddings_by_reference_only(client):
    """ComfyUI reads an embedding's bare name as words: only `embedding:NAME` brings another family's embedding."""
    words = client.post("/plan", json=tiny_spec(negative_prompt="blurry, SD2_NEG", prompt_weighting="comfy"))
    assert words.status_code == 200, words.text
    named = client.post("/plan", json=tiny_spec(prompt="a marionette, embedding:sd2_neg", prompt_weighting="comfy"))
    assert named.status_code == 422 and [e["field"] for e in named.json()["detail"]] == ["prompt"]
