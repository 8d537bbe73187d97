"""Every problem of a spec in one 422, each on its field, spec fields first and then the uploads, from the one path
/plan and POST /jobs share (server/api/spec_checks.py); a configured model's missing files stay a 409, said once the
spec has no mistake left."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from conftest import TOKEN
from fastapi import HTTPException
from helpers import gradient_frames, multipart, png, tiny_spec

from server.api import spec_checks
from server.api.spec_checks import SpecProblems, check_spec
from server.loaders import ModelConfig
from server.protocol import parse_spec

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
# an unknown checkpoint and VAE, an unknown embedding, more frames than the v2 motion module takes in one pass
MISTAKES = {"base": "sd99", "vae": "kl-f8", "prompt": "embedding:nope, a man", "frames": 40}


def test_plan_and_submit_answer_every_problem_at_once_in_one_order(tiny_server):
    spec = tiny_spec(controlnets=[{"kind": "depth"}], **MISTAKES)
    depth = gradient_frames(3)
    depth[1] = png(np.zeros((32, 32), np.uint8))  # the wrong size
    data, files = multipart(spec, depth=depth)
    with httpx.Client(base_url=tiny_server.url, headers=HEADERS, timeout=60) as client:
        planned = client.post("/plan", json=spec)
        submitted = client.post("/jobs", data=data, files=files)
        again = client.post("/jobs", data=data, files=files)
    assert planned.status_code == submitted.status_code == 422, (planned.text, submitted.text)
    spec_fields = ["base", "vae", "prompt", "frames"]
    assert [d["field"] for d in planned.json()["detail"]] == spec_fields
    items = submitted.json()["detail"]
    assert [d["field"] for d in items] == [*spec_fields, "depth", "depth[1]"]
    assert again.json() == submitted.json()  # the same answer every time
    said = {d["field"]: d["message"] for d in items}
    assert "'nope'" in said["prompt"] and "40 frames" in said["frames"] and "3 depth images" in said["depth"]
    assert "32x32" in said["depth[1]"]
    # the unknown names keep what clients need to say what to pick; the other items are field and message only
    assert (items[0]["kind"], items[0]["name"], "sd15" in items[0]["known"]) == ("base", "sd99", True)
    assert items[1]["kind"] == "vae" and all(set(d) == {"field", "message"} for d in items[2:])


def test_a_mistake_is_said_before_missing_files(tiny_models, tmp_path):
    """422 is the artist's mistake, 409 a configured model whose files are not on this machine: a spec with both
    gets the 422 (fixing it may change the models), then, fixed, the 409."""
    toml = tiny_models / f"models_{tmp_path.name}.toml"  # beside models.toml: its relative paths hold
    toml.write_text((tiny_models / "models.toml").read_text() + f'\n[vae.gone]\nsource = "{tmp_path}/gone.pt"\n')
    config = ModelConfig.load(toml)
    with pytest.raises(SpecProblems) as mistake:
        check_spec(config, parse_spec(tiny_spec(vae="gone", prompt="embedding:nope")))
    assert [f for f, _ in mistake.value.errors] == ["prompt"]
    with pytest.raises(HTTPException) as missing:
        check_spec(config, parse_spec(tiny_spec(vae="gone")))
    assert missing.value.status_code == 409 and missing.value.detail["name"] == "gone"


def test_a_new_check_is_one_line_and_answers_in_order(tiny_models, monkeypatch):
    def family(named):
        return [("base", f"{named.spec.base!r} is an SDXL checkpoint")]

    monkeypatch.setattr(spec_checks, "CHECKS", (*spec_checks.CHECKS, family))
    with pytest.raises(SpecProblems) as e:
        check_spec(ModelConfig.load(tiny_models / "models.toml"), parse_spec(tiny_spec(vae="kl-f8", frames=40)))
    assert e.value.errors[1:] == [("frames", e.value.errors[1][1]), ("base", "'sd15' is an SDXL checkpoint")]
    assert [f for f, _ in e.value.errors] == ["vae", "frames", "base"] and e.value.details[0]["name"] == "kl-f8"
    assert e.value.details[1:] == [{}, {}]
