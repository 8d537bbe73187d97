"""The panel's label for every field the add-on sends (backend/field_labels.py), and the server's real 422 read
through them: each problem a line, "label: message", never the field path."""

from __future__ import annotations

import dataclasses
import json
import typing

from helpers import tiny_spec

from backend.client import ServerError
from backend.field_labels import LABELS, label
from backend.model_errors import artist_message
from server.api.errors import spec_error_response
from server.api.spec_checks import SpecProblems, check_spec
from server.loaders import ModelConfig
from server.protocol import JobSpec, parse_spec, vocabulary


def field_paths(cls, prefix="") -> list[str]:
    """Every field path of a spec dataclass, a list's items as [] (what LABELS is keyed by)."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path, kind = f"{prefix}{f.name}", hints[f.name]
        out.append(path)
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is list and dataclasses.is_dataclass(args[0]):
            out += [f"{path}[]"] + field_paths(args[0], f"{path}[].")
        elif len(args) == 1 and dataclasses.is_dataclass(args[0]):  # X | None
            out += field_paths(args[0], f"{path}.")
    return out


def test_every_field_a_spec_and_its_uploads_can_have_is_in_the_table():
    paths = field_paths(JobSpec)
    assert {"loras[].name", "controlnets[].model", "prompts[].prompt", "context.motion_scales"} <= set(paths)
    uploads = [v for k, v in vars(vocabulary).items() if k.startswith("FORM_")]
    missing = [p for p in paths + uploads if p not in LABELS]
    assert not missing, f"fields without the panel's label: {missing}"
    for template in LABELS.values():
        assert "_" not in template.replace("{", "").split("}")[-1], template  # words, not identifiers


SPEC = tiny_spec(
    frame_start=10,
    loras=[{"name": "style"}, {"name": "inkStyle", "weight": 0.6}],
    controlnets=[{"kind": "depth", "model": ""}, {"kind": "openpose"}],
    prompts=[{"frame": 0, "prompt": "a"}, {"frame": 30, "prompt": "b"}],
    references=[{}, {"model": "plus"}],
    motion_loras=[{"name": "zoom_in", "weight": 0.5}],
    sparsectrl={"model": "rgb", "keyframes": [0, 12]},
)


def test_the_issues_examples_and_each_kind_of_path():
    assert label("loras[1].name", SPEC) == "LoRA 2 (inkStyle)"
    assert label("loras[1].weight", SPEC) == "LoRA 2 (inkStyle) weight"
    assert label("controlnets[0].model", SPEC) == "Depth guide model"
    assert label("controlnets[1].weight", SPEC) == "Pose guide weight"
    assert label("base", SPEC) == "Checkpoint" and label("vae", SPEC) == "VAE"
    assert label("prompt", SPEC) == "Prompt" and label("negative_prompt", SPEC) == "Negative"
    assert label("prompts[1].prompt", SPEC) == "Prompt at frame 40"  # the marker's scene frame
    assert label("references[1].model", SPEC) == "Reference 2 model"
    assert label("motion_loras[0].weight", SPEC) == "Camera motion zoom_in"
    assert label("sparsectrl.weight", SPEC) == "Keyframe strength"
    assert label("context.length", SPEC) == "Context windows Window"
    # uploads: per-frame images by scene frame, keyframe images by their keyframe's frame
    assert label("depth[3]", SPEC) == "Depth guide of frame 13"
    assert label("keyframe[1]", SPEC) == "Keyframe at frame 22"
    assert label("reference[0]", SPEC) == "Reference 1 image"
    # nested beyond the table: the nearest parent's label; a path it does not know: as it is
    assert label("camera.frames[2].K", SPEC) == "Camera (its path over the frame range)"
    assert label("loras[7].name", SPEC) == "LoRA 8 (no name)"
    assert label("body.spec", SPEC) == "body.spec" and label("", SPEC) == ""


def test_a_real_422_reads_as_the_panels_labels(tiny_models):
    """Every problem of one answer (prompts the server cannot read, too many frames for the motion module, an
    unknown name, an upload count) as lines of "label: message"."""
    spec = parse_spec(
        tiny_spec(
            frames=40,
            frame_start=1,
            prompt="a marionette, embedding:gone",
            prompts=[{"frame": 4, "prompt": "embedding:nope"}],
            loras=[{"name": "stlye"}],
        )
    )
    try:
        check_spec(ModelConfig.load(tiny_models / "models.toml"), spec)
    except SpecProblems as e:
        answer = json.loads(spec_error_response(e.errors, e.details).body)["detail"]
    else:
        raise AssertionError("the spec has problems")
    answer.append({"field": "depth", "message": "3 depth images for 40 frames; send one per frame"})
    lines = artist_message(ServerError(422, "server answered 422", answer), spec.to_dict()).splitlines()
    assert len(lines) == len(answer)
    assert lines[0].startswith("The image LoRA 'stlye' (Prompt & Models) is not on the server.")
    assert "Prompt: unknown embedding 'gone'" in " ".join(lines)
    assert "Prompt at frame 5: unknown embedding 'nope'" in " ".join(lines)
    assert any(line.startswith("Frame range: 40 frames is more than the motion module") for line in lines)
    assert lines[-1] == "Depth guide: 3 depth images for 40 frames; send one per frame"
    assert not any(f["field"] + ":" in " ".join(lines) for f in answer if f["field"] not in ("prompt", "depth"))
