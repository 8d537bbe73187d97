"""Models the user can see and fetch: availability in /models, a missing model refused with a 4xx before anything
renders, downloads into the Hugging Face cache that resume after a cut, and offline loads with no network call.

The hub is not reachable here: huggingface_hub itself talks to tests/support/fake_hub.py, a local HTTP server that
imitates the hub's listing and file endpoints (ETag, commit header, Range requests).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import tiny_spec

from server.api import Settings, create_app
from server.loaders import ModelConfig, ModelEntry, hub
from tests.support.fake_hub import FakeHub

REPO = "tiny-org/motion"
WEIGHTS = "diffusion_pytorch_model.safetensors"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_hub(tiny_models):
    hub_server = FakeHub.from_folders({REPO: tiny_models / "motion_v2"})
    yield hub_server
    hub_server.close()


def hub_entry(name="v2-hub") -> ModelEntry:
    return ModelEntry("motion_module", name, REPO, None)


def test_a_cut_off_download_resumes_and_a_partial_file_never_counts(fake_hub, tiny_models, tmp_path):
    cache, entry = tmp_path / "hf", hub_entry()
    original = (tiny_models / "motion_v2" / WEIGHTS).read_bytes()
    cut = len(original) // 3
    fake_hub.cut[WEIGHTS] = cut
    seen = []
    with pytest.raises(OSError):  # the connection drops mid-file (IncompleteRead), then the hub refuses
        hub.download(entry, lambda *a: seen.append(a), endpoint=fake_hub.url, cache=cache)
    partial = list(cache.rglob("*.incomplete"))
    assert [p.stat().st_size for p in partial] == [cut]
    assert hub.availability(entry, cache)["available"] is False, "a cut-off file must not count as downloaded"

    fake_hub.heal()
    before = len(fake_hub.requests)
    snap = hub.download(entry, lambda *a: seen.append(a), endpoint=fake_hub.url, cache=cache)
    gets = [r for r in fake_hub.requests[before:] if r[0] == "GET" and r[1].endswith(WEIGHTS)]
    assert gets == [("GET", f"/{REPO}/resolve/main/{WEIGHTS}", f"bytes={cut}-")], "it resumed, not restarted"
    assert (snap / WEIGHTS).read_bytes() == original
    assert not list(cache.rglob("*.incomplete"))
    assert seen[-1] == (WEIGHTS, len(original), len(original))
    found = hub.availability(entry, cache)
    assert found["available"] and found["size"] == len(original) + (snap / "config.json").stat().st_size


def test_only_the_files_the_loaders_read_are_fetched():
    listing = [
        "model_index.json",
        "v1-5-pruned.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
        "safety_checker/model.safetensors",
    ]
    assert hub.files_to_fetch(listing) == [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.bin",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
    ]
    assert hub.files_to_fetch(
        ["README.md", "config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
    ) == ["config.json", "diffusion_pytorch_model.safetensors"]


@pytest.fixture
def app_client(tiny_models, fake_hub, tmp_path):
    config = ModelConfig.load(tiny_models / "models.toml")
    config.entries["motion_module"]["v2-hub"] = hub_entry()
    config.entries["motion_module"]["v2-gone"] = ModelEntry(
        "motion_module", "v2-gone", str(tmp_path / "nowhere" / "mm.ckpt"), None
    )
    settings = Settings(
        models=config, data_dir=tmp_path / "jobs", extra={"hub_endpoint": fake_hub.url, "hub_cache": tmp_path / "hf"}
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8420") as client:
        yield client
    hub.configure()


def test_health_names_the_service_version_and_device(app_client):
    health = app_client.get("/health").json()
    assert health["service"] == "marionette" and health["version"]
    assert (health["device"], health["dtype"]) == ("cpu", "float32") and "no CUDA" in health["device_reason"]


def test_models_say_what_is_here_and_a_missing_model_is_refused_naming_it(app_client, fake_hub, tiny_models):
    listed = {m["name"]: m for m in app_client.get("/models").json()["motion_module"]}
    size = sum(p.stat().st_size for p in (tiny_models / "motion_v2").iterdir())
    assert listed["v2"]["available"] and listed["v2"]["size"] == size
    assert listed["v2-hub"]["available"] is False and listed["v2-hub"]["size"] == size
    assert listed["v2-hub"]["downloadable"] and not listed["v2-gone"]["downloadable"]
    assert listed["v2"]["family"] == "sd15" and listed["v2-hub"]["family"] is None  # a hub model not downloaded

    for route in ("/plan", "/jobs"):
        r = app_client.post(route, json=tiny_spec(motion_module="v2-hub"))
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert "'v2-hub'" in detail["message"] and "Download it in Marionette" in detail["message"]
        assert f"({size / 1e3:.1f} KB)" in detail["message"] and detail["size"] == size
    r = app_client.post("/plan", json=tiny_spec(motion_module="v2-gone"))
    assert r.status_code == 409 and "nowhere/mm.ckpt" in r.json()["detail"]["message"]
    assert app_client.get("/health").json()["status"] == "ok", "the server goes on serving"
    assert app_client.post("/plan", json=tiny_spec()).status_code == 200


def test_download_route_reports_progress_and_then_the_model_plans(app_client):
    r = app_client.post("/models/motion_module/v2-hub/download")
    assert r.status_code == 202 and r.json()["state"] == "running"
    deadline = time.monotonic() + 60
    while (report := app_client.get("/models/motion_module/v2-hub/download").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert report["state"] == "done" and report["done"] == report["total"] > 0, report
    assert set(report["files"]) == {"config.json", WEIGHTS}
    listed = {m["name"]: m for m in app_client.get("/models").json()["motion_module"]}
    assert listed["v2-hub"]["available"] and listed["v2-hub"]["size"] == report["total"]
    assert listed["v2-hub"]["family"] == "sd15"  # read from the downloaded snapshot
    again = app_client.post("/models/motion_module/v2-hub/download")
    assert again.json()["state"] == "done", "a model already here is not fetched again"
    r = app_client.post("/models/motion_module/v2-gone/download")
    assert r.status_code == 409 and "cannot be downloaded" in r.json()["detail"]["message"]
    assert app_client.post("/models/motion_module/nope/download").status_code == 404


OFFLINE_LOAD = """
import sys
calls = []
def no_network(event, args):
    if event == "socket.connect":
        calls.append(args)
        raise RuntimeError(f"network call while offline: {args}")
sys.addaudithook(no_network)
from server.loaders import hub, load_motion_adapter
from server.loaders.config import ModelEntry
assert hub.availability(ModelEntry("motion_module", "m", sys.argv[1], None))["available"]
adapter = load_motion_adapter(sys.argv[1])
print("loaded", type(adapter).__name__, len(calls))
"""


def test_offline_a_cached_model_loads_with_no_network_call(fake_hub, tmp_path):
    cache = tmp_path / "hf"
    hub.download(hub_entry(), lambda *a: None, endpoint=fake_hub.url, cache=cache)
    before = len(fake_hub.requests)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_ENDPOINT": fake_hub.url}
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_LOAD, REPO], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["loaded", "MotionAdapter", "0"]
    assert len(fake_hub.requests) == before, "nothing reached the (fake) hub"
