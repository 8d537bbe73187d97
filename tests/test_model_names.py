"""Model names the server's config lacks, beyond the API battery (tests/test_server.py): the names an empty
ControlNet model and camera_motion "auto" stand for, the answer's items, and the add-on's words for them."""

from __future__ import annotations

import json

import pytest
from helpers import tiny_spec
from test_camera_motion import MOTIONS, make_path

from backend.client import ServerError
from backend.model_errors import artist_message
from server.api.errors import spec_error_response
from server.api.spec_checks import SpecProblems, check_spec
from server.loaders import ModelConfig
from server.protocol import parse_spec


def test_names_the_config_lacks_by_default_or_by_the_camera(tiny_models):
    """An empty ControlNet model means the one named as its kind; camera_motion "auto" picks motion LoRAs from the
    camera path: when the config lacks those, the field says so in those terms."""
    full = ModelConfig.load(tiny_models / "models.toml")
    entries = {kind: dict(named) for kind, named in full.entries.items()}
    del entries["controlnet"]["openpose"], entries["motion_lora"]["pan_left"]
    spec = parse_spec(
        tiny_spec(
            frames=16,
            controlnets=[{"kind": "openpose", "model": ""}],
            camera_motion="auto",
            camera=make_path(MOTIONS["pan left by turning"][0], frames=16),
        )
    )
    with pytest.raises(SpecProblems) as e:
        check_spec(ModelConfig(entries), spec)
    errors = dict(e.value.errors)
    assert list(errors) == ["controlnets[0].model", "camera_motion"]
    assert "empty model means the one named as its kind" in errors["controlnets[0].model"]
    assert "'pan_left'" in errors["camera_motion"] and "to its own left" in errors["camera_motion"]
    assert "zoom_in" in errors["camera_motion"] and '"manual"' in errors["camera_motion"]
    assert [d["name"] for d in e.value.details] == ["openpose", "pan_left"]
    # the add-on's words for the same answer: the panel choices, not the field paths
    answer = json.loads(spec_error_response(e.value.errors, e.value.details).body)["detail"]
    said = artist_message(ServerError(422, "server answered 422", answer), spec.to_dict())
    assert "The Pose ControlNet 'openpose' (Guides, the one an empty Model means) is not on the server." in said
    assert "Pick one of: depth, depth-original, normal." in said
    assert (
        "Camera motion From camera needs the camera LoRA 'pan_left'" in said and "set Camera motion to Manual" in said
    )
    assert "controlnets[0]" not in said


def test_each_model_choice_is_named_where_the_artist_sets_it(tiny_models):
    """Every model field of the spec answers in the words of the panel that sets it (or the batch option), with
    the names to pick from; the other errors of the same answer keep the server's words."""
    spec = parse_spec(
        tiny_spec(
            motion_module="v3",
            loras=[{"name": "stlye"}],
            motion_loras=[{"name": "spin"}],
            sparsectrl={"model": "scribble", "keyframes": [0]},
            references=[{}, {"model": "plus"}],
            vae="kl-f8",
        )
    )
    with pytest.raises(SpecProblems) as e:
        check_spec(ModelConfig.load(tiny_models / "models.toml"), spec)
    fields = [f for f, _ in e.value.errors]
    assert fields == ["loras[0].name", "motion_loras[0].name", "sparsectrl.model", "references[1].model", "vae"]
    answer = json.loads(spec_error_response(e.value.errors, e.value.details).body)["detail"]
    answer.append({"field": "depth", "message": "3 depth images for 4 frames; send one per frame"})
    error = ServerError(422, "server answered 422", answer)
    said = artist_message(error, spec.to_dict())
    assert "The image LoRA 'stlye' (Prompt & Models) is not on the server. Pick one of: style." in said
    assert "The camera LoRA 'spin' (Camera Motion) is not on the server: set its weight to 0." in said
    assert "The SparseCtrl model 'scribble' (Keyframes) is not on the server. Pick one of: rgb, rgb-original." in said
    assert "The IP-Adapter 'plus' of image reference 2 (Image References) is not on the server." in said
    assert "Pick one of: ip_adapter, ip_adapter_bin," in said and "The VAE 'kl-f8' (Prompt & Models)" in said
    assert said.endswith("\nDepth guide: 3 depth images for 4 frames; send one per frame")  # a line a problem
    batch = artist_message(error, spec.to_dict(), batch=True)
    assert (
        "of image reference 2 (--reference-model)" in batch and "'stlye' (the scene's Prompt & Models panel)" in batch
    )
    assert "The VAE 'kl-f8' (--vae) is not on the server. Pick one of: tiny-ft," in batch
    other = ServerError(409, "server answered 409: sd15: not on this machine", {"message": "sd15: not on this machine"})
    assert artist_message(other, spec.to_dict()) == str(other)
