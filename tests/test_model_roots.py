"""Model roots: an artist's A1111 and ComfyUI installs (fake trees of tiny models in the public formats) served by
the real server: their models listed by kind and name, the default names taking the well-known public files, a job
on a root's checkpoint and LoRA, files dropped in after start-up appearing on refresh, and bad roots refused."""

from __future__ import annotations

import os
import shutil
import tomllib

import httpx
import pytest
from conftest import TOKEN
from helpers import read_events, tiny_spec

from server import model_layouts
from server.loaders import DEFAULT_CONFIG, WEIGHT_SUFFIXES, ModelConfig
from server.protocol import MOTION_LORAS
from tests.support import model_roots


@pytest.fixture(scope="module")
def roots(tiny_models, tmp_path_factory):
    """(the A1111 install, the portable ComfyUI package's outer folder)."""
    return model_roots.build(tiny_models, tmp_path_factory.mktemp("installs"))


def names(config, kind) -> dict[str, str]:
    return {n: config.get(kind, n).source for n in config.names(kind)}


# --- layouts and names, in this process ----------------------------------------------------------------------------


def test_installs_are_recognised_and_summarised_in_the_artists_words(roots, tmp_path):
    a1111, comfy = roots
    assert model_layouts.detect(a1111) == ("a1111", a1111)
    assert model_layouts.detect(comfy) == ("comfyui", comfy / "ComfyUI")  # the install one folder down
    assert model_layouts.summary(a1111) == (
        "A1111/Forge install: 1 checkpoint, 1 LoRA, 2 VAEs, 1 embedding, 1 ControlNet, 1 motion module, "
        "2 motion LoRAs, 1 SparseCtrl model, 1 IP-Adapter"
    )
    assert model_layouts.summary(comfy) == (
        "ComfyUI install: 2 checkpoints, 1 LoRA, 1 motion module, 1 motion LoRA, 1 IP-Adapter, 1 image encoder"
    )
    # ComfyUI/models picked directly: a plain folder whose subfolders have the names ComfyUI gives them
    assert model_layouts.summary(comfy / "ComfyUI" / "models").startswith("Folder: 2 checkpoints, 1 LoRA")
    (tmp_path / "empty").mkdir()
    assert model_layouts.summary(tmp_path / "empty") == "no models found in this folder"
    assert model_layouts.summary(tmp_path / "gone") == "folder not found"


def test_default_names_take_the_well_known_local_files_and_the_rest_go_by_stem(roots):
    a1111, comfy = roots
    config = ModelConfig.load(None, roots=[a1111, comfy])
    here = {
        ("motion_module", "v2"): a1111 / "extensions/sd-webui-animatediff/model/mm_sd_v15_v2.ckpt",
        ("motion_module", "v3"): comfy / "ComfyUI/custom_nodes/ComfyUI-AnimateDiff-Evolved/models/v3_sd15_mm.ckpt",
        ("controlnet", "depth"): a1111 / "models/ControlNet/control_v11f1p_sd15_depth.pth",
        ("sparsectrl", "rgb"): a1111 / "models/ControlNet/v3_sd15_sparsectrl_rgb.ckpt",
        ("motion_lora", "zoom_in"): a1111 / "models/Lora/v2_lora_ZoomIn.ckpt",
        ("motion_lora", "pan_left"): comfy / "ComfyUI/models/animatediff_motion_lora/v2_lora_PanLeft.ckpt",
        ("ip_adapter", "ip_adapter"): a1111 / "models/ControlNet/ip-adapter_sd15.safetensors",
        ("image_encoder", "vit_h"): comfy / "ComfyUI/models/clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
        ("ip_adapter", "ip_adapter_plus"): comfy / "ComfyUI/models/ipadapter/ip-adapter-plus_sd15.safetensors",
    }
    for (kind, name), path in here.items():
        entry = config.get(kind, name)
        assert (entry.source, entry.config, entry.weight_name) == (str(path), None, None), (kind, name)
    assert config.get("ip_adapter", "ip_adapter").image_encoder == "vit_h"
    default = ModelConfig.load()
    for kind, name in (("motion_module", "v1"), ("controlnet", "normal"), ("base", "sd15"), ("vae", "mse")):
        assert config.get(kind, name) == default.get(kind, name)  # not in a root: still the hub's
    assert names(config, "base")["dreamyToon_v1"] == str(a1111 / "models/Stable-diffusion/dreamyToon_v1.safetensors")
    assert {"toonMix", "sd15"} <= set(names(config, "base"))
    assert {"inkStyle", "watercolor"} <= set(names(config, "lora"))
    assert names(config, "motion_lora")["orbitMotion"].endswith("camera/orbitMotion.safetensors")  # by its keys
    assert {"kl-f8-anime2", "dreamyToon_v1.vae"} <= set(names(config, "vae")) and "EasyNegative" in names(
        config, "embedding"
    )
    assert not {"v2_lora_ZoomIn", "mm_sd_v15_v2", "v3_sd15_mm"} & {n for k in config.entries for n in config.names(k)}
    # the first root wins a name both have, in the order given
    swapped = ModelConfig.load(None, roots=[comfy, a1111])
    assert names(swapped, "base")["dreamyToon_v1"].startswith(str(comfy))


def test_the_well_known_file_table_names_default_models_only():
    """One table (`files` on the entries of default_models.toml): each public file name means one default model."""
    with open(DEFAULT_CONFIG, "rb") as f:
        data = tomllib.load(f)
    seen = {}
    for kind, entries in data.items():
        for name, entry in entries.items() if isinstance(entries, dict) else ():
            for file in entry.get("files", []):
                assert file.lower().endswith(WEIGHT_SUFFIXES) and "/" not in file
                assert file.lower() not in seen, f"{file} names two models"
                seen[file.lower()] = (kind, name)
                assert "/" in entry["source"], f"{kind}.{name} is not a hub model"
    assert model_layouts.well_known() == seen
    for name, (_, stem, _) in MOTION_LORAS.items():
        assert seen[f"{stem}.ckpt".lower()] == ("motion_lora", name)
    assert {("motion_module", v) for v in ("v1", "v2", "v3")} <= set(seen.values())


def test_a_missing_root_is_a_clear_error_and_an_ip_adapter_never_stops_the_start(roots, tmp_path):
    with pytest.raises(ValueError, match=r"model root .*nope: not found"):
        ModelConfig.load(None, roots=[tmp_path / "nope"])
    (tmp_path / "m.toml").write_text('roots = ["nope"]\n')
    with pytest.raises(ValueError, match=r"model root .*nope: not found"):
        ModelConfig.load(tmp_path / "m.toml")
    (tmp_path / "s.toml").write_text('roots = "~/ComfyUI"\n')
    with pytest.raises(ValueError, match=r"roots must be a list of folders"):
        ModelConfig.load(tmp_path / "s.toml")
    a1111, _ = roots
    # two image encoders, neither the default vit_h: the A1111 ip-adapter is left out, the server still starts
    (tmp_path / "two.toml").write_text('[image_encoder.a]\nsource = "x/a"\n[image_encoder.b]\nsource = "x/b"\n')
    assert ModelConfig.load(tmp_path / "two.toml", roots=[a1111]).names("ip_adapter") == []
    # an SD1.5 ViT-G IP-Adapter takes the bigG encoder found beside it, or is left out: never the ViT-H one
    comfy = tmp_path / "ComfyUI"
    for file in ("models/ipadapter/ip-adapter_sd15_vit-G.safetensors", "models/checkpoints/x.safetensors"):
        (comfy / file).parent.mkdir(parents=True, exist_ok=True)
        (comfy / file).write_bytes(b"")
    assert "ip-adapter_sd15_vit-G" not in ModelConfig.load(None, roots=[comfy]).names("ip_adapter")
    (comfy / "models/clip_vision").mkdir()
    (comfy / "models/clip_vision/CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors").write_bytes(b"")
    linked = ModelConfig.load(None, roots=[comfy]).get("ip_adapter", "ip-adapter_sd15_vit-G")
    assert linked.image_encoder == "CLIP-ViT-bigG-14-laion2B-39B-b160k"
    (tmp_path / "one.toml").write_text('[image_encoder.only]\nsource = "x/a"\n')
    linked = ModelConfig.load(tmp_path / "one.toml", roots=[a1111])
    assert linked.get("ip_adapter", "ip_adapter").image_encoder == "only"


def test_rescan_shows_new_files_and_keeps_known_names(roots, tmp_path):
    a1111, _ = roots
    root = tmp_path / "webui"
    shutil.copytree(a1111, root)
    config = ModelConfig.load(None, roots=[root])
    loras = root / "models" / "Lora"
    shutil.copyfile(loras / "inkStyle.safetensors", loras / "pencil.safetensors")
    assert "pencil" not in config.names("lora")
    config.rescan()
    assert config.names("lora") == ["inkStyle", "pencil"]
    shutil.copyfile(loras / "inkStyle.safetensors", loras / "charcoal.safetensors")
    assert config.get("lora", "charcoal").source == str(loras / "charcoal.safetensors")  # an unknown name looks again
    os.remove(loras / "pencil.safetensors")
    config.rescan()
    assert "pencil" not in config.names("lora")
    # a [folders] folder is listed again the same way
    (tmp_path / "m.toml").write_text('[folders]\nlora = ["loras"]\n')
    (tmp_path / "loras").mkdir()
    folders = ModelConfig.load(tmp_path / "m.toml")
    shutil.copyfile(loras / "inkStyle.safetensors", tmp_path / "loras" / "sketch.safetensors")
    folders.rescan()
    assert folders.names("lora") == ["sketch"]


# --- the real server ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(roots, tiny_models, tmp_path_factory):
    """The server on the default config plus the two installs: the ComfyUI one from the TOML's `roots`, the A1111
    one from --model-root. The tiny single-file checkpoints take the tiny base's config ([file_configs])."""
    from backend import launcher

    a1111, comfy = roots
    data = tmp_path_factory.mktemp("served-roots")
    toml = data / "models.toml"
    toml.write_text(
        f'roots = ["{comfy}"]\n[file_configs]\nbase = "{tiny_models / "sd15"}"\n'
        + DEFAULT_CONFIG.read_text()
        + f'\n[motion_module.tiny]\nsource = "{tiny_models / "motion_v2"}"\n'
    )
    server = launcher.start(
        os.environ.get("MARIONETTE_SERVER_PYTHON"),
        args=["--models", str(toml), "--model-root", str(a1111), "--port", "0", "--data", str(data)]
        + ["--token", TOKEN],
        log=data / "stdout.log",
        timeout=180,
        env={"HF_HUB_OFFLINE": "1"},
    )
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client
    server.stop()


def listed(client) -> dict[str, dict[str, dict]]:
    return {kind: {m["name"]: m for m in entries} for kind, entries in client.get("/models").json().items()}


def test_get_models_lists_the_installs_models_under_their_kinds(served):
    models = listed(served)
    assert {"dreamyToon_v1", "toonMix"} <= set(models["base"]) and {"inkStyle", "watercolor"} <= set(models["lora"])
    assert {"orbitMotion", "zoom_in", "pan_left"} <= set(models["motion_lora"])
    v2 = models["motion_module"]["v2"]
    assert v2["source"] == "mm_sd_v15_v2.ckpt" and v2["available"] and not v2["downloadable"]
    assert models["motion_module"]["v3"]["source"] == "v3_sd15_mm.ckpt"
    assert models["ip_adapter"]["ip_adapter"]["source"] == "ip-adapter_sd15.safetensors"
    assert models["image_encoder"]["vit_h"]["source"] == "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    assert models["motion_module"]["v1"]["downloadable"]  # in no root: still the hub's


def test_a_job_runs_on_a_roots_checkpoint_and_lora(served):
    spec = tiny_spec(base="dreamyToon_v1", motion_module="tiny", loras=[{"name": "inkStyle", "weight": 0.8}])
    r = served.post("/jobs", json=spec)
    assert r.status_code == 202, r.text
    with served.stream("GET", f"/jobs/{r.json()['id']}/events") as events:
        kinds = [k for _, k, _ in read_events(events)]
    assert kinds[-1] == "done" and kinds.count("frame") == 4
    plan = served.get(f"/jobs/{r.json()['id']}/manifest").json()["plan"]
    assert plan["base"]["source"] == "dreamyToon_v1.safetensors" and plan["base"]["sha256"]


def test_files_dropped_in_after_start_appear_on_refresh(served, roots):
    _, comfy = roots
    loras = comfy / "ComfyUI" / "models" / "loras"
    shutil.copyfile(loras / "watercolor.safetensors", loras / "gouache.safetensors")
    assert "gouache" in listed(served)["lora"]


def test_a_root_that_does_not_exist_stops_the_start_with_its_name(tmp_path):
    from backend import launcher

    with pytest.raises(launcher.LaunchError, match=r"--model-root .*no-such-install: folder not found"):
        launcher.start(
            os.environ.get("MARIONETTE_SERVER_PYTHON"),
            args=["--model-root", str(tmp_path / "no-such-install"), "--port", "0", "--data", str(tmp_path)],
            log=tmp_path / "stdout.log",
            timeout=60,
        )
