"""Model loading (server/loaders/) on the tiny models, which are saved in the public files' formats and key
layouts, and the configs shipped for the full-size public models."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from server import loaders as C
from server.loaders.embeddings import load_embedding
from server.protocol import MOTION_LORAS
from tests.support import tiny_models as tiny
from tests.support.tiny_models import TEXT_DIM

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP threads waiting on each other
    make the pipeline runs many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def entries(root: Path):
    config = tomllib.loads((root / "models.toml").read_text())
    for kind, folders in config.pop("folders", {}).items():  # every file of a listed folder, by its stem name
        for folder in folders:
            for path in sorted((root / folder).iterdir()):
                yield kind, path.stem, str(path), None
    for kind, table in config.items():
        for name, entry in table.items():
            yield kind, name, str(root / entry["source"]), (str(root / entry["config"]) if "config" in entry else None)


def assert_same_state(a: dict, b: dict):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key


def assert_cpu_float32(model):
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        assert t.device.type == "cpu", name
        assert not t.is_floating_point() or t.dtype == torch.float32, name


# --- every configured entry ----------------------------------------------------------------------------------------


def test_every_models_toml_entry_loads(tiny_models):
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        DDIMScheduler,
        MotionAdapter,
        SparseControlNetModel,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

    from server.engine.ip_adapter import IPAdapter

    seen = set()
    for kind, name, source, config in entries(tiny_models):
        seen.add(kind)
        if kind == "base":
            parts = C.load_base(source, config)
            assert isinstance(parts["unet"], UNet2DConditionModel) and isinstance(parts["vae"], AutoencoderKL)
            assert isinstance(parts["text_encoder"], CLIPTextModel) and isinstance(parts["tokenizer"], CLIPTokenizer)
            assert isinstance(parts["scheduler"], DDIMScheduler)
            for model in ("unet", "vae", "text_encoder"):
                assert_cpu_float32(parts[model])
        elif kind in ("motion_module", "controlnet", "sparsectrl"):
            loader, cls = {
                "motion_module": (C.load_motion_adapter, MotionAdapter),
                "controlnet": (C.load_controlnet, ControlNetModel),
                "sparsectrl": (C.load_sparsectrl, SparseControlNetModel),
            }[kind]
            model = loader(source, config)
            assert isinstance(model, cls), (kind, name)
            assert_cpu_float32(model)
        elif kind == "motion_lora":
            sd = C.motion_lora_state_dict(source)
            assert sd and all(k.startswith("unet.") and "_lora." in k for k in sd), name
        elif kind == "lora":
            sd = C.image_lora_source(source)
            assert any(k.startswith("lora_unet_") for k in sd) and any(k.startswith("lora_te_") for k in sd)
        elif kind == "image_encoder":
            model = C.load_image_encoder(source, config)
            assert isinstance(model, CLIPVisionModelWithProjection), name
            assert_cpu_float32(model)
        elif kind == "ip_adapter":
            model = C.load_ip_adapter(source, config)
            assert isinstance(model, IPAdapter) and model.variant in ("plain", "plus"), name
            assert_cpu_float32(model)
        elif kind == "vae":
            model = C.load_vae(source, config)
            assert isinstance(model, AutoencoderKL), name
            assert_cpu_float32(model)
        elif kind == "embedding":
            vectors = load_embedding(source)
            assert vectors.ndim == 2 and vectors.shape[1] == TEXT_DIM and vectors.dtype == torch.float32, name
        else:
            raise AssertionError(f"unexpected kind {kind}")
    assert seen == {
        "base",
        "motion_module",
        "controlnet",
        "sparsectrl",
        "motion_lora",
        "lora",
        "image_encoder",
        "ip_adapter",
        "vae",
        "embedding",
    }
    names = {(kind, name) for kind, name, _, _ in entries(tiny_models)}
    assert {("motion_lora", n) for n in MOTION_LORAS} <= names
    assert {("motion_lora", n + "-original") for n in MOTION_LORAS} <= names


# --- original formats against their diffusers twins ----------------------------------------------------------------


@pytest.mark.parametrize(
    "version,filename,frames,modules",
    [("v1", "mm_sd_v15.ckpt", 24, 20), ("v2", "mm_sd_v15_v2.ckpt", 32, 21), ("v3", "v3_sd15_mm.ckpt", 32, 20)],
)
def test_original_motion_module_equals_diffusers_twin(tiny_models, version, filename, frames, modules):
    original_file = tiny_models / filename
    raw = C.read_state_dict(original_file)
    assert all(".temporal_transformer." in k for k in raw)
    pe = raw[
        "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
    ]
    assert pe.shape[:2] == (1, frames)
    assert len({k.split(".temporal_transformer.")[0] for k in raw}) == modules

    original = C.load_motion_adapter(original_file, config=tiny_models / f"motion_{version}")
    twin = C.load_motion_adapter(tiny_models / f"motion_{version}")
    assert_same_state(original.state_dict(), twin.state_dict())
    assert (original.mid_block is not None) == (version == "v2")
    assert original.config.motion_max_seq_length == frames

    for source in (original_file, tiny_models / f"motion_{version}"):
        assert C.motion_adapter_info(source) == {"version": version, "max_frames": frames}


def test_diffusers_format_single_file_motion_module(tiny_models):
    """AnimateDiff-Lightning ships MotionAdapter keys in one file; its safetensors header alone gives the info."""
    file = tiny_models / "motion_v2" / "diffusion_pytorch_model.safetensors"
    assert C.motion_adapter_info(file) == {"version": "v2", "max_frames": 32}
    assert C.motion_adapter_info(tiny_models, weight_name="mm_sd_v15.ckpt") == {"version": "v1", "max_frames": 24}
    single = C.load_motion_adapter(file, config=tiny_models / "motion_v2")
    assert_same_state(single.state_dict(), C.load_motion_adapter(tiny_models / "motion_v2").state_dict())
    by_name = C.load_motion_adapter(
        tiny_models / "motion_v2", config=tiny_models / "motion_v2", weight_name="diffusion_pytorch_model.safetensors"
    )
    assert_same_state(single.state_dict(), by_name.state_dict())


def test_original_sparsectrl_equals_diffusers_twin(tiny_models):
    original = C.load_sparsectrl(tiny_models / "v3_sd15_sparsectrl_rgb.ckpt", config=tiny_models / "sparsectrl_rgb")
    twin = C.load_sparsectrl(tiny_models / "sparsectrl_rgb")
    assert_same_state(original.state_dict(), twin.state_dict())
    assert original.config.use_simplified_condition_embedding and original.config.conditioning_channels == 4
    raw = C.read_state_dict(tiny_models / "v3_sd15_sparsectrl_rgb.ckpt")
    assert "controlnet_cond_embedding.weight" in raw


def test_original_controlnet_equals_diffusers_twin(tiny_models):
    raw = C.read_state_dict(tiny_models / "control_v11f1p_sd15_depth.pth")
    assert all(k.startswith("control_model.") for k in raw) and "control_model.input_hint_block.14.weight" in raw
    original = C.load_controlnet(tiny_models / "control_v11f1p_sd15_depth.pth", config=tiny_models / "controlnet/depth")
    assert_same_state(original.state_dict(), C.load_controlnet(tiny_models / "controlnet/depth").state_dict())


def test_original_motion_lora_converts_to_diffusers_twin(tiny_models):
    from safetensors.torch import load_file

    for name, (_, stem, _) in MOTION_LORAS.items():
        raw = C.read_state_dict(tiny_models / f"{stem}.ckpt")
        assert all(".temporal_transformer.transformer_blocks.0.attention_blocks." in k and "_lora." in k for k in raw)
        converted = C.motion_lora_state_dict(tiny_models / f"{stem}.ckpt")
        twin_file = load_file(tiny_models / "motion_lora" / name / "diffusion_pytorch_model.safetensors")
        assert_same_state(converted, twin_file)
        assert_same_state(converted, C.motion_lora_state_dict(tiny_models / "motion_lora" / name))
        assert "unet.mid_block.motion_modules.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight" in converted


def _tiny_animatediff(tiny_models):
    from diffusers import AnimateDiffPipeline

    base = C.load_base(tiny_models / "sd15")
    pipe = AnimateDiffPipeline(**base, motion_adapter=C.load_motion_adapter(tiny_models / "motion_v2"))
    # LoRA loading freezes the base weights; torch folds matmuls differently for weights that require grad, so
    # freeze them first for bit-identical runs.
    pipe.unet.requires_grad_(False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_motion_lora_changes_frames_and_weight_zero_does_not(tiny_models):
    pipe = _tiny_animatediff(tiny_models)

    def frames():
        return pipe(
            "a dog running",
            num_frames=2,
            height=64,
            width=64,
            num_inference_steps=2,
            guidance_scale=7.5,
            generator=torch.Generator().manual_seed(3),
            output_type="np",
        ).frames

    without = frames()
    sd = C.motion_lora_state_dict(tiny_models / "v2_lora_ZoomIn.ckpt")
    pipe.load_lora_weights(sd, adapter_name="zoom_in")
    wrapped = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and "zoom_in" in m.lora_A]
    assert len(wrapped) == len(sd) // 2 == 21 * 2 * 4  # every LoRA pair landed on a motion attention projection
    pipe.set_adapters(["zoom_in"], [1.0])
    full = frames()
    pipe.set_adapters(["zoom_in"], [0.0])
    zero = frames()
    assert np.abs(full - without).max() > 0.05
    assert np.array_equal(zero, without)


def test_image_lora_loads_into_unet_and_text_encoder(tiny_models):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        **C.load_base(tiny_models / "sd15"), safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    sd = C.image_lora_source(tiny_models / "lora" / "style.safetensors")
    pipe.load_lora_weights(sd, adapter_name="style")
    unet_pairs = len([k for k in sd if k.startswith("lora_unet_") and k.endswith(".lora_down.weight")])
    te_pairs = len([k for k in sd if k.startswith("lora_te_") and k.endswith(".lora_down.weight")])
    assert len([m for m in pipe.unet.modules() if hasattr(m, "lora_A") and "style" in m.lora_A]) == unet_pairs
    assert len([m for m in pipe.text_encoder.modules() if hasattr(m, "lora_A") and "style" in m.lora_A]) == te_pairs


# --- SD1.5 single file -----------------------------------------------------------------------------------------------


def test_single_file_base_equals_folder(tiny_models):
    raw = C.read_state_dict(tiny_models / "sd15.safetensors")
    assert {k.split(".")[0] for k in raw} == {"model", "first_stage_model", "cond_stage_model"}
    assert "cond_stage_model.transformer.text_model.embeddings.position_ids" in raw
    single = C.load_base(tiny_models / "sd15.safetensors", config=tiny_models / "sd15")
    folder = C.load_base(tiny_models / "sd15")
    for part in ("unet", "vae", "text_encoder"):
        assert_same_state(single[part].state_dict(), folder[part].state_dict())
    assert single["tokenizer"].get_vocab() == folder["tokenizer"].get_vocab()
    assert dict(single["scheduler"].config) == dict(folder["scheduler"].config)


def test_single_file_without_tokenizer_gets_the_shipped_clip_tokenizer(tiny_models, tmp_path):
    """A config folder with no tokenizer/ (the shipped SD1.5 config, or one an artist made) gets the CLIP ViT-L/14
    tokenizer shipped in server/configs/sd15/tokenizer: no network, no Hugging Face cache."""
    config = tmp_path / "sd15-config"
    shutil.copytree(tiny_models / "sd15", config, ignore=shutil.ignore_patterns("*.safetensors", "tokenizer"))
    tokenizer = C.load_base(tiny_models / "sd15.safetensors", config=config)["tokenizer"]
    assert len(tokenizer.get_vocab()) == 49408
    # The ids CLIP's own tokenizer gives (openai/CLIP, transformers' CLIPTokenizer docs): start, a, photo, of, a,
    # cat, end; padded with <|endoftext|> as SD1.5's tokenizer pads.
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.pad_token_id == 49407 and tokenizer.model_max_length == 77


def _fake_hub_repo(hf_home: Path, repo: str, files: dict[str, Path]):
    """A repo in the standard Hugging Face cache layout, as a download would have left it."""
    folder = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    commit = hashlib.sha1(repo.encode()).hexdigest()
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, src in files.items():
        dst = folder / "snapshots" / commit / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def test_offline_single_file_and_hub_ids_from_the_cache(tiny_models, tmp_path):
    """With HF_HUB_OFFLINE=1 and every socket refused: the single file loads; hub ids load from the cache; a
    single file whose config has no tokenizer gets the shipped CLIP tokenizer."""
    hf_home = tmp_path / "hf"
    _fake_hub_repo(
        hf_home,
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        {str(p.relative_to(tiny_models / "sd15")): p for p in (tiny_models / "sd15").rglob("*") if p.is_file()},
    )
    _fake_hub_repo(
        hf_home, "guoyww/animatediff-motion-adapter-v1-5-2", {p.name: p for p in (tiny_models / "motion_v2").iterdir()}
    )
    _fake_hub_repo(
        hf_home,
        "guoyww/animatediff-motion-lora-zoom-in",
        {
            "diffusion_pytorch_model.safetensors": tiny_models
            / "motion_lora"
            / "zoom_in"
            / "diffusion_pytorch_model.safetensors"
        },
    )
    no_tok = tmp_path / "sd15-config"
    shutil.copytree(tiny_models / "sd15", no_tok, ignore=shutil.ignore_patterns("*.safetensors", "tokenizer"))
    script = textwrap.dedent(f"""
        import socket
        def refuse(*args, **kwargs):
            raise OSError("network refused by the test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import torch
        from server import loaders as C
        root = {str(tiny_models)!r}
        def same(a, b):
            return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
        folder = C.load_base(root + "/sd15")
        single = C.load_base(root + "/sd15.safetensors", config=root + "/sd15")
        print("single", all(same(single[p].state_dict(), folder[p].state_dict())
                            for p in ("unet", "vae", "text_encoder")))
        shipped_tok = C.load_base(root + "/sd15.safetensors", config={str(no_tok)!r})["tokenizer"]
        print("tokenizer", len(shipped_tok.get_vocab()) == 49408)
        hub = C.load_base("stable-diffusion-v1-5/stable-diffusion-v1-5")
        print("hub_base", same(hub["unet"].state_dict(), folder["unet"].state_dict()))
        adapter = C.load_motion_adapter("guoyww/animatediff-motion-adapter-v1-5-2")
        print("hub_adapter", same(adapter.state_dict(), C.load_motion_adapter(root + "/motion_v2").state_dict()))
        print("hub_info", C.motion_adapter_info("guoyww/animatediff-motion-adapter-v1-5-2"))
        lora = C.motion_lora_state_dict("guoyww/animatediff-motion-lora-zoom-in")
        print("hub_lora", same(lora, C.motion_lora_state_dict(root + "/v2_lora_ZoomIn.ckpt")))
        try:
            C.load_motion_adapter("guoyww/not-in-the-cache")
        except C.CheckpointError as e:
            print("missing_hub", "guoyww/not-in-the-cache" in str(e))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(
        HF_HOME=str(hf_home),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
        HF_HUB_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS="1",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert lines == {
        "single": "True",
        "tokenizer": "True",
        "hub_base": "True",
        "hub_adapter": "True",
        "hub_info": "{'version': 'v2', 'max_frames': 32}",
        "hub_lora": "True",
        "missing_hub": "True",
    }, result.stdout + result.stderr[-3000:]


def test_model_config_keeps_hub_files_and_hub_ids_and_they_load(tiny_models, tmp_path, monkeypatch):
    """A hub file `org/name/file.ckpt` in a model config stays a hub source (it used to become a local path that
    never exists) and loads from the Hugging Face cache; a folder of that name next to the config still wins."""
    import huggingface_hub.constants

    hf_home = tmp_path / "hf"
    _fake_hub_repo(hf_home, "guoyww/animatediff", {"mm_sd_v15_v2.ckpt": tiny_models / "mm_sd_v15_v2.ckpt"})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    (tmp_path / "local" / "motion").mkdir(parents=True)
    toml = tmp_path / "models.toml"
    twin_config = tiny_models / "motion_v2"
    toml.write_text(
        f'[motion_module.hub_file]\nsource = "guoyww/animatediff/mm_sd_v15_v2.ckpt"\n'
        f'config = "{twin_config}"\n'
        f'[motion_module.hub_id]\nsource = "guoyww/animatediff-motion-adapter-v1-5-2"\n'
        f'[motion_module.local]\nsource = "local/motion"\n'
        f'[motion_module.relative_file]\nsource = "mm/mm_sd_v15_v2.ckpt"\n'
    )
    config = C.ModelConfig.load(toml)
    hub_file = config.get("motion_module", "hub_file")
    assert hub_file.source == "guoyww/animatediff/mm_sd_v15_v2.ckpt" and not hub_file.local
    assert config.get("motion_module", "hub_id").source == "guoyww/animatediff-motion-adapter-v1-5-2"
    assert config.get("motion_module", "local").source == str(tmp_path / "local" / "motion")
    assert C.motion_adapter_info(hub_file.source) == {"version": "v2", "max_frames": 32}
    assert hub_file.config == str(tiny_models / "motion_v2")
    assert config.get("motion_module", "relative_file").source == str(tmp_path / "mm" / "mm_sd_v15_v2.ckpt")
    loaded = C.load_motion_adapter(hub_file.source, hub_file.config).state_dict()
    twin = C.load_motion_adapter(tiny_models / "motion_v2").state_dict()
    assert sorted(loaded) == sorted(twin) and all(torch.equal(loaded[k], twin[k]) for k in twin)
    with pytest.raises(C.CheckpointError, match="guoyww/animatediff"):
        C.load_motion_adapter("guoyww/animatediff/v3_sd15_mm.ckpt")  # not in the cache, and offline


# --- the configs shipped for the public models ---------------------------------------------------------------------


def _count_on_meta(cls, folder: Path, **kwargs) -> int:
    config = cls.load_config(str(folder), **kwargs)
    with torch.device("meta"):
        model = cls.from_config(config)
    return sum(p.numel() for p in model.parameters())


def test_shipped_configs_build_the_published_models():
    from diffusers import AutoencoderKL, ControlNetModel, MotionAdapter, SparseControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    sd15 = C.CONFIGS / "sd15"
    assert round(_count_on_meta(UNet2DConditionModel, sd15, subfolder="unet") / 1e6, 1) == 859.5
    assert round(_count_on_meta(AutoencoderKL, sd15, subfolder="vae") / 1e6, 1) == 83.7
    with torch.device("meta"):
        text = CLIPTextModel(CLIPTextConfig.from_pretrained(sd15 / "text_encoder"))
    assert round(sum(p.numel() for p in text.parameters()) / 1e6, 1) == 123.1
    assert json.loads((sd15 / "model_index.json").read_text())["_class_name"] == "StableDiffusionPipeline"
    assert round(_count_on_meta(MotionAdapter, C.CONFIGS / "motion_adapter_v2") / 1e6) == 453
    assert round(_count_on_meta(MotionAdapter, C.CONFIGS / "motion_adapter_v1") / 1e6) == 417
    assert _count_on_meta(MotionAdapter, C.CONFIGS / "motion_adapter_v3") == _count_on_meta(
        MotionAdapter, C.CONFIGS / "motion_adapter_v1"
    )
    assert round(_count_on_meta(ControlNetModel, C.CONFIGS / "controlnet_sd15") / 1e6) == 361
    for version, (frames, mid) in {"v1": (24, False), "v2": (32, True), "v3": (32, False)}.items():
        cfg = MotionAdapter.load_config(str(C.CONFIGS / f"motion_adapter_{version}"))
        assert (cfg["motion_max_seq_length"], cfg["use_motion_mid_block"]) == (frames, mid)
    with torch.device("meta"):
        rgb = SparseControlNetModel.from_config(SparseControlNetModel.load_config(str(C.CONFIGS / "sparsectrl_rgb")))
        scribble = SparseControlNetModel.from_config(
            SparseControlNetModel.load_config(str(C.CONFIGS / "sparsectrl_scribble"))
        )
    assert rgb.controlnet_cond_embedding.weight.shape[1] == 4 + 1  # VAE latent + mask
    assert scribble.controlnet_cond_embedding.conv_in.weight.shape[1] == 3 + 1  # RGB + mask
    # configs only, no weights: JSON, and the CLIP tokenizer's BPE merges and licence beside its vocab.json
    tokenizer_text = {C.CONFIGS / "sd15" / "tokenizer" / n for n in ("merges.txt", "LICENSE-CLIP")}
    shipped = [p for p in C.CONFIGS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert [p for p in shipped if p.suffix not in (".json", ".py") and p not in tokenizer_text] == []


def test_shipped_config_is_chosen_from_the_keys(tiny_models):
    """Without config=, an original motion module gets the shipped config of its version: the tiny file's shapes
    then disagree with the full-size config, and the error says so (it is not a network or meta-device failure)."""
    with pytest.raises(C.CheckpointError, match=r"motion_adapter_v1"):
        C.load_motion_adapter(tiny_models / "mm_sd_v15.ckpt")
    with pytest.raises(C.CheckpointError, match=r"motion_adapter_v2"):
        C.load_motion_adapter(tiny_models / "mm_sd_v15_v2.ckpt")


# --- errors ----------------------------------------------------------------------------------------------------------


class _Payload:
    """Pickles as a call that would create a folder, if anything unpickled it with code execution."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_missing_corrupt_and_wrong_files_raise_checkpoint_error(tiny_models, tmp_path):
    missing = tmp_path / "nowhere" / "mm_sd_v15_v2.ckpt"
    for load in (
        C.read_state_dict,
        C.load_base,
        C.load_motion_adapter,
        C.load_sparsectrl,
        C.load_controlnet,
        C.motion_lora_state_dict,
        C.image_lora_source,
        C.motion_adapter_info,
    ):
        with pytest.raises(C.CheckpointError, match="file not found") as info:
            load(missing)
        assert str(missing) in str(info.value)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 this is not a safetensors file" * 10)
    truncated = tmp_path / "mm_truncated.ckpt"
    data = (tiny_models / "mm_sd_v15_v2.ckpt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    for bad, load in (
        (garbage, C.load_base),
        (garbage, C.motion_adapter_info),
        (truncated, C.load_motion_adapter),
        (truncated, C.motion_lora_state_dict),
    ):
        with pytest.raises(C.CheckpointError) as info:
            load(bad)
        assert str(bad) in str(info.value)

    marker = tmp_path / "pickle-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"weight": torch.zeros(1), "payload": _Payload(str(marker))}, evil)
    with pytest.raises(C.CheckpointError, match="weights-only") as info:
        C.load_motion_adapter(evil)
    assert str(evil) in str(info.value) and not marker.exists()

    wrong = [
        (C.load_motion_adapter, tiny_models / "control_v11f1p_sd15_depth.pth", "expected an AnimateDiff motion module"),
        (C.load_sparsectrl, tiny_models / "mm_sd_v15_v2.ckpt", "expected a SparseCtrl model"),
        (C.load_controlnet, tiny_models / "v3_sd15_sparsectrl_rgb.ckpt", "expected an SD1.5 ControlNet"),
        (C.load_base, tiny_models / "mm_sd_v15.ckpt", "expected an SD1.5 checkpoint"),
        (C.motion_lora_state_dict, tiny_models / "lora" / "style.safetensors", "expected an AnimateDiff motion LoRA"),
        (C.image_lora_source, tiny_models / "v2_lora_PanLeft.ckpt", "motion LoRA"),
        (C.load_motion_adapter, tiny_models / "controlnet" / "depth", "expected an AnimateDiff motion adapter"),
        (C.load_base, tiny_models / "motion_v2", "expected a diffusers SD1.5 pipeline folder"),
    ]
    for load, path, message in wrong:
        with pytest.raises(C.CheckpointError, match=message) as info:
            load(path)
        assert str(path) in str(info.value)

    # a v2 file (with mid block) under a v3 config (without) must not silently drop weights
    with pytest.raises(C.CheckpointError, match="does not match the config") as info:
        C.load_motion_adapter(tiny_models / "mm_sd_v15_v2.ckpt", config=tiny_models / "motion_v3")
    assert "mid_block" in str(info.value)
    with pytest.raises(C.CheckpointError, match="weights missing"):
        C.load_motion_adapter(tiny_models / "v3_sd15_mm.ckpt", config=tiny_models / "motion_v2")


# --- the tiny models themselves ------------------------------------------------------------------------------------


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_tiny_build_is_deterministic_and_idempotent(tiny_models, tmp_path):
    stamp = (tiny_models / "models.toml").stat().st_mtime_ns
    assert tiny.build(tiny_models) == tiny_models / "models.toml"
    assert (tiny_models / "models.toml").stat().st_mtime_ns == stamp  # up to date: nothing rewritten
    tiny.build(tmp_path / "again")
    again, shared = _digests(tmp_path / "again"), _digests(tiny_models)
    # other tests add their own files to the session's shared folder: compare what the build writes
    assert again == {name: shared.get(name) for name in again}


def test_unprefixed_unet_lora_lands_on_the_unet(tiny_models, tmp_path):
    """AnimateDiff's v3 domain adapter (v3_sd15_adapter.ckpt) keys have no "unet." prefix (`down_blocks.0.attentions.0
    .transformer_blocks.0.attn1.processor.to_q_lora.down.weight`); diffusers skips such keys without an error, so
    image_lora_source prefixes them and every pair lands on a spatial attention projection."""
    import re

    pipe = _tiny_animatediff(tiny_models)
    sd = {}
    for name, module in pipe.unet.named_modules():
        if "motion_modules" not in name and re.search(r"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$", name):
            key = re.sub(r"\.(to_q|to_k|to_v|to_out)(\.0)?$", r".processor.\1_lora", name)
            sd[f"{key}.down.weight"] = torch.randn(4, module.in_features)
            sd[f"{key}.up.weight"] = torch.randn(module.out_features, 4)
    torch.save({"state_dict": sd}, tmp_path / "v3_sd15_adapter.ckpt")
    source = C.image_lora_source(tmp_path / "v3_sd15_adapter.ckpt")
    assert sorted(source) == sorted(f"unet.{k}" for k in sd)
    pipe.load_lora_weights(source, adapter_name="domain")
    wrapped = [n for n, m in pipe.unet.named_modules() if hasattr(m, "lora_A") and "domain" in m.lora_A]
    assert len(wrapped) == len(sd) // 2 and not any("motion_modules" in n for n in wrapped)
