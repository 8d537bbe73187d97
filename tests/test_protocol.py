"""The wire format: spec validation names the field to fix; guide counts; event framing."""

import pytest

from server.protocol import JobSpec, SpecError, format_event, frame_filename, guide_errors, parse_events, parse_spec


def fields(exc):
    return {f for f, _ in exc.value.errors}


def test_minimal_spec_gets_published_defaults():
    spec = parse_spec({"prompt": "a knight"})
    assert (spec.steps, spec.guidance, spec.width, spec.height, spec.frames, spec.fps, spec.scheduler) == (
        25,
        7.5,
        512,
        512,
        16,
        8,
        "ddim",
    )


def test_full_spec_round_trips():
    data = {
        "prompt": "p",
        "seed": 3,
        "controlnets": [{"kind": "depth", "weight": 0.5, "start": 0.1, "end": 0.9}],
        "motion_loras": [{"name": "zoom_in", "weight": 0.8}],
        "loras": [{"name": "style", "weight": 0.6}],
        "sparsectrl": {"keyframes": [0, 15]},
    }
    spec = parse_spec(data)
    assert spec.controlnets[0].model == "depth" and spec.controlnets[0].weight == 0.5
    assert spec.motion_loras[0].name == "zoom_in" and spec.sparsectrl.keyframes == [0, 15]
    assert isinstance(parse_spec(__import__("json").loads(spec.to_json())), JobSpec)


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"width": 500}, "width"),
        ({"height": 0}, "height"),
        ({"steps": 0}, "steps"),
        ({"steps": 1000}, "steps"),
        ({"guidance": 99}, "guidance"),
        ({"guidance": float("nan")}, "guidance"),
        ({"seed": -1}, "seed"),
        ({"frames": "16"}, "frames"),
        ({"scheduler": "heun"}, "scheduler"),
        ({"prompt": "  "}, "prompt"),
        ({"colour": "red"}, "colour"),
        ({"version": 2}, "version"),
        ({"controlnets": [{"kind": "canny"}]}, "controlnets[0].kind"),
        ({"controlnets": [{"kind": "depth", "start": 0.8, "end": 0.2}]}, "controlnets[0].start"),
        ({"motion_loras": [{"name": "pan_left", "weight": 5}]}, "motion_loras[0].weight"),
        ({"sparsectrl": {"keyframes": [0, 16]}}, "sparsectrl.keyframes[1]"),
        ({"camera_motion": "auto"}, "camera_motion"),
    ],
)
def test_bad_fields_are_named(patch, field):
    with pytest.raises(SpecError) as exc:
        parse_spec({"prompt": "p", **patch})
    assert field in fields(exc)


def test_size_error_suggests_a_multiple_of_8():
    with pytest.raises(SpecError) as exc:
        parse_spec({"prompt": "p", "width": 500})
    assert "496" in str(exc.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SpecError) as exc:
        parse_spec({"prompt": "", "width": 7, "steps": -3})
    assert {"prompt", "width", "steps"} <= fields(exc)


def test_guide_counts_must_match_frames():
    spec = parse_spec(
        {
            "prompt": "p",
            "frames": 4,
            "controlnets": [{"kind": "depth"}, {"kind": "openpose"}],
            "sparsectrl": {"keyframes": [0]},
        }
    )
    assert guide_errors(spec, {"depth": 4, "pose": 1, "keyframe": 1}) == []
    bad = {f for f, _ in guide_errors(spec, {"depth": 3, "normal": 4, "keyframe": 0})}
    assert bad == {"depth", "pose", "normal", "keyframe"}


def test_frames_are_numbered_from_one():
    assert frame_filename(0) == "frame_0001.png" and frame_filename(41) == "frame_0042.png"


def test_events_round_trip():
    raw = b"".join(format_event(i + 1, k, {"i": i}) for i, k in enumerate(["queued", "step", "done"]))
    lines = (raw.decode() + ": keep-alive\n\n").splitlines(keepends=True)
    assert list(parse_events(lines)) == [(1, "queued", {"i": 0}), (2, "step", {"i": 1}), (3, "done", {"i": 2})]


def test_a_spec_goes_to_the_wire_and_back_unchanged():
    spec = parse_spec(
        {
            "prompt": "p",
            "frames": 20,
            "controlnets": [{"kind": "openpose", "weight": 0.5}],
            "loras": [{"name": "style", "weight": 0.7}],
            "context": {"length": 16, "loop": True},
            "sparsectrl": {"keyframes": [0, 19]},
            "prompts": [{"frame": 5, "prompt": "q"}],
        }
    )
    assert parse_spec(spec.to_dict()) == spec and spec.to_dict()["controlnets"][0]["model"] == "openpose"
    assert parse_spec(JobSpec(prompt="p").to_dict()) == JobSpec(prompt="p", controlnets=[])


def test_one_frame_numbering_and_one_guide_vocabulary():
    from server.protocol import CONTROL_KINDS, FORM_POSE, GUIDE_FORM

    assert [frame_filename(i) for i in (0, 1, 99)] == ["frame_0001.png", "frame_0002.png", "frame_0100.png"]
    assert set(GUIDE_FORM) == set(CONTROL_KINDS) and GUIDE_FORM["openpose"] == FORM_POSE


def test_references_init_free_init_and_motion_scales_round_trip():
    spec = parse_spec(
        {
            "prompt": "a knight",
            "frames": 40,
            "references": [{"weight": 0.5, "last": 20}, {"model": "ip_plus", "first": 21, "start": 0.2}],
            "init": {"strength": 0.3},
            "free_init": {"iterations": 2, "filter": "gaussian"},
            "motion_scale": 1.2,
            "context": {"length": 16, "overlap": 4, "motion_scales": [1, 1.1, 0.9]},
        }
    )
    assert [(r.model, r.first, r.last) for r in spec.references] == [("ip_adapter", 0, 20), ("ip_plus", 21, None)]
    assert spec.init.strength == 0.3 and spec.free_init.iterations == 2 and spec.motion_scale == 1.2
    assert parse_spec(spec.to_dict()) == spec
    assert parse_spec({"prompt": "x", "vae": "mse", "clip_skip": 2}).clip_skip == 2
    assert guide_errors(spec, {"reference": 2, "init": 40}) == []
    assert [f for f, _ in guide_errors(spec, {"reference": 1})] == ["reference", "init"]


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"references": [{"first": 16}]}, "references[0].first"),
        ({"references": [{"first": 5, "last": 2}]}, "references[0].last"),
        ({"references": [{"start": 0.5, "end": 0.5}]}, "references[0].start"),
        ({"references": [{}] * 9}, "references"),
        ({"init": {"strength": 1.5}}, "init.strength"),
        ({"free_init": {"iterations": 0}}, "free_init.iterations"),
        ({"free_init": {"filter": "median"}}, "free_init.filter"),
        ({"free_init": {"temporal_cutoff": 0}}, "free_init.temporal_cutoff"),
        ({"motion_scale": 5}, "motion_scale"),
        ({"frames": 40, "context": {"motion_scales": [1, 1]}}, "context.motion_scales"),
        ({"clip_skip": 0}, "clip_skip"),
        ({"clip_skip": 2.0}, "clip_skip"),
        ({"vae": 3}, "vae"),
    ],
)
def test_bad_reference_init_and_motion_fields_are_named(patch, field):
    with pytest.raises(SpecError) as e:
        parse_spec({"prompt": "x", **patch})
    assert [f for f, _ in e.value.errors] == [field]
