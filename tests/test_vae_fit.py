"""A separate VAE that does not fit the base (another latent space: SDXL's scaling factor, 16 latent channels,
another downscaling) is refused before anything renders: a 422 on `vae` from /plan and POST /jobs, read from the
configs alone, and the server keeps serving. (One refused at job time is not kept: tests/test_vae.py.)"""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import read_events, tiny_spec
from test_checkpoints import _fake_hub_repo

from server import loaders as C
from server.api.spec_checks import check_spec
from server.protocol import SpecError, parse_spec

SDXL = "an SDXL VAE (scaling 0.13025) does not fit this SD1.5 checkpoint (0.18215); pick an SD1.5 VAE such as "
FOREIGN = {  # config changes -> what the artist is told
    "sdxl": ({"scaling_factor": 0.13025}, SDXL + "vae-ft-mse-840000"),
    "flux": ({"latent_channels": 16}, "16 latent channels (an SD3 or Flux VAE) does not fit this SD1.5 checkpoint (4)"),
    "levels": ({"block_out_channels": [8, 8, 16, 16, 16]}, "a VAE that shrinks images 16x does not fit"),
}


def foreign_vae(tiny_models, folder, **changes):
    """The tiny VAE folder with its config changed and its weights file garbage: a check that read any weight
    would fail on the file (a 409), not on the fit."""
    shutil.copytree(tiny_models / "vae_diffusers", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights" * 100)
    return folder


def config_with(tiny_models, tmp_path, vaes: dict) -> C.ModelConfig:
    toml = tiny_models / f"models_{tmp_path.name}.toml"  # beside models.toml: its relative paths hold
    lines = [f'[vae.{name}]\nsource = "{source}"\n{extra}' for name, (source, extra) in vaes.items()]
    toml.write_text((tiny_models / "models.toml").read_text() + "\n" + "\n".join(lines))
    return C.ModelConfig.load(toml)


def refusal(config, vae: str, base: str = "sd15") -> list:
    with pytest.raises(SpecError) as info:
        check_spec(config, parse_spec(tiny_spec(vae=vae, base=base)))
    return info.value.errors


def test_a_vae_of_another_latent_space_is_refused_from_its_config(tiny_models, tmp_path, monkeypatch):
    """A folder, a single file with a foreign config, and a hub id (from the cache): each a 422 on `vae`."""
    import huggingface_hub.constants

    vaes = {n: (foreign_vae(tiny_models, tmp_path / n, **changes), "") for n, (changes, _) in FOREIGN.items()}
    single = tmp_path / "sdxl_vae.safetensors"
    single.write_bytes(b"not weights")
    vaes["sdxl-file"] = (single, f'config = "{vaes["sdxl"][0]}"\n')
    hf_home = tmp_path / "hf"
    _fake_hub_repo(hf_home, "madebyollin/sdxl-vae-fp16-fix", {p.name: p for p in vaes["sdxl"][0].iterdir()})
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(C.hub, "CACHE", hf_home / "hub")
    vaes["sdxl-hub"] = ("madebyollin/sdxl-vae-fp16-fix", "")
    config = config_with(tiny_models, tmp_path, vaes)
    for name, (_, message) in FOREIGN.items():
        [(field, text)] = refusal(config, name)
        assert field == "vae" and text.startswith(f"{name!r}: ") and message in text, text
    for name in ("sdxl-file", "sdxl-hub"):
        assert refusal(config, name) == [("vae", f"{name!r}: {SDXL}vae-ft-mse-840000 (stabilityai/sd-vae-ft-mse)")]
    assert refusal(config, "sdxl", base="sd15-single")[0][1].startswith(f"'sdxl': {SDXL}")  # its config's VAE
    for name in ("tiny-ft", "tiny-ft-ckpt", "tiny-ft-diffusers"):  # VAEs that fit pass
        for base in ("sd15", "sd15-single"):
            check_spec(config, parse_spec(tiny_spec(vae=name, base=base)))


def test_plan_and_submit_refuse_it_before_anything_loads_and_the_server_keeps_serving(tiny_models, tmp_path):
    from fastapi.testclient import TestClient

    from server.api import Settings, create_app

    sdxl = foreign_vae(tiny_models, tmp_path / "sdxl-vae", scaling_factor=0.13025)
    config = config_with(tiny_models, tmp_path, {"sdxl": (sdxl, "")})
    settings = Settings(models=config, data_dir=tmp_path / "jobs")
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8420") as client:
        for route in ("/plan", "/jobs"):
            r = client.post(route, json=tiny_spec(vae="sdxl", steps=1, frames=2))
            assert r.status_code == 422, r.text
            [item] = r.json()["detail"]
            assert item["field"] == "vae" and SDXL in item["message"] and str(tmp_path) not in item["message"]
        assert client.get("/health").json()["loaded"] == []  # nothing loaded for it
        assert not list((tmp_path / "jobs").rglob("manifest.json"))  # and no job made
        r = client.post("/jobs", json=tiny_spec(vae="tiny-ft", steps=1, frames=2))
        assert r.status_code == 202, r.text
        with client.stream("GET", f"/jobs/{r.json()['id']}/events") as events:
            assert read_events(events)[-1][1] == "done"
        assert client.post("/plan", json=tiny_spec(vae="sdxl")).status_code == 422
