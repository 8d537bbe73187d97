"""The OpenAPI schema of the job spec cannot drift from the protocol: every field of JobSpec and its nested records,
at any depth, with the annotation's type and the record's default; every limit and choice the schema states is
the one parse_spec enforces (probed at the limit and just past it); and the specs the add-on builds validate
against the schema the server serves."""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing

import bpy
import httpx
import jsonschema
import pytest
from conftest import TOKEN
from test_extension import point_at, scene_with_camera

from server.api.schema import CAMERA_PATH, JOB_SPEC
from server.protocol import CAMERA_MATCH_DEFAULTS, JobSpec, SpecError, context_windows, parse_spec

# --- every field, its type and its default ------------------------------------------------------------------------


def annotation_types(annotation) -> set[str]:
    """The JSON types a field's annotation allows."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        return set().union(*(annotation_types(a) for a in typing.get_args(annotation)))
    if annotation is type(None):
        return {"null"}
    if typing.get_origin(annotation) is list:
        return {"array"}
    if dataclasses.is_dataclass(annotation) or annotation is dict:
        return {"object"}
    return {{str: "string", bool: "boolean", int: "integer", float: "number"}[annotation]}


def value_type(value) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[type(value)]


def schema_types(node: dict) -> set[str]:
    if "oneOf" in node:
        return set().union(*map(schema_types, node["oneOf"]))
    if "enum" in node:
        return {value_type(v) for v in node["enum"]}
    kinds = node["type"]
    return set(kinds) if isinstance(kinds, list) else {kinds}


def object_node(node: dict) -> dict:
    return next(n for n in node.get("oneOf", [node]) if "properties" in n)


def record(annotation):
    """The dataclass inside X, X | None or list[X], else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def check_record(cls, node: dict, path: str = "") -> list[str]:
    """Assert that the schema object `node` describes the record `cls` exactly; returns the field paths seen."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(node["properties"]) == set(fields), f"{path or 'JobSpec'}: schema and record disagree"
    assert node.get("additionalProperties") is False, f"{path}: unknown fields are refused, the schema must say so"
    required = {
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert required <= set(node.get("required", ())), f"{path}: fields without a default are required"
    seen = []
    for name, f in fields.items():
        at, sub, annotation = f"{path}{name}", node["properties"][name], hints[name]
        seen.append(at)
        assert schema_types(sub) == annotation_types(annotation), at
        if f.default is not dataclasses.MISSING and (f.default is not None or "default" in sub):
            assert "default" in sub, f"{at}: the schema states no default ({f.default!r})"
            assert (value_type(sub["default"]), sub["default"]) == (value_type(f.default), f.default), at
        inner = record(annotation)
        if typing.get_origin(annotation) is list:
            item = typing.get_args(annotation)[0]
            assert schema_types(sub["items"]) == annotation_types(item), f"{at}[]"
            if inner is not None:
                seen += check_record(inner, sub["items"], f"{at}[].")
        elif inner is not None:
            seen += check_record(inner, object_node(sub), f"{at}.")
    return seen


def test_the_schema_has_every_spec_field_with_its_type_and_default():
    seen = check_record(JobSpec, JOB_SPEC)
    # the walk reached every nested record, whatever is added next
    for field in ("context.mode", "cameractrl.scale", "references[].last", "free_init.filter", "vae", "clip_skip"):
        assert field in seen
    camera = object_node(JOB_SPEC["properties"]["camera"])
    assert set(camera["properties"]) == {"fps", "width", "height", "frames", "up", *CAMERA_MATCH_DEFAULTS}
    assert camera is CAMERA_PATH


# --- every limit and choice is the parser's --------------------------------------------------------------------


def camera_path(frames: int) -> dict:
    frame = {"K": [[64, 0, 32], [0, 64, 32], [0, 0, 1]], "world_to_camera": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]}
    frame["world_to_camera"].append([0, 0, 0, 1])
    return {
        "fps": 8,
        "width": 64,
        "height": 64,
        "up": [0, -1, 0],
        "max_weight": 1.0,
        "window": 16,
        "overlap": 4,
        "frames": [dict(copy.deepcopy(frame), frame=1 + i, depth=5.0) for i in range(frames)],
    }


def full_spec(cameractrl: bool = False) -> dict:
    """A valid spec with every optional part present, so that every field of the schema has a value to probe."""
    windows = len(context_windows(16, 8, 2, False))
    spec = {
        "prompt": "a marionette",
        "frames": 16,
        "width": 64,
        "height": 64,
        "loras": [{"name": "style", "weight": 0.5}],
        "motion_loras": [{"name": "zoom_in", "weight": 0.5}],
        "controlnets": [{"kind": "depth", "model": "", "weight": 1.0, "start": 0.0, "end": 1.0}],
        "sparsectrl": {"model": "rgb", "keyframes": [0, 3], "weight": 1.0},
        "camera_motion": "auto",
        "camera": camera_path(16),
        "context": {"length": 8, "overlap": 2, "loop": False, "fuse": "flat", "mode": "unet"},
        "prompts": [{"frame": 0, "prompt": "a puppet"}],
        "references": [{"model": "ip_adapter", "weight": 1.0, "start": 0.0, "end": 1.0, "first": 0, "last": 3}],
        "init": {"strength": 0.5},
        "free_init": {"iterations": 2, "filter": "gaussian", "spatial_cutoff": 0.25, "temporal_cutoff": 0.25},
        "motion_scale": 1.0,
        "vae": "",
        "clip_skip": 2,
    }
    spec["context"]["motion_scales"] = [1.0] * windows
    if cameractrl:
        spec.update(camera_motion="cameractrl", cameractrl={"model": "cameractrl", "scale": 1.0})
    return spec


def leaves(node: dict, path: str = ""):
    """(field path, schema node) of every value the schema describes; a list's first item stands for all."""
    yield path, node
    node = object_node(node) if "oneOf" in node else node
    for name, sub in node.get("properties", {}).items():
        yield from leaves(sub, f"{path}.{name}" if path else name)
    if "items" in node:
        yield from leaves(node["items"], f"{path}[0]")


def set_at(spec: dict, path: str, value) -> dict:
    out, keys = copy.deepcopy(spec), path.replace("[", ".[").split(".")
    target = out
    for key in keys[:-1]:
        target = target[int(key[1:-1])] if key.startswith("[") else target[key]
    last = keys[-1]
    target[int(last[1:-1]) if last.startswith("[") else last] = value
    return out


def refused_at(spec: dict, path: str) -> bool:
    """Whether parse_spec refuses `path`: an error names it, the object holding it, or a sibling whose message
    names it (start "must be below end")."""
    holder, _, name = path.rpartition(".")
    try:
        parse_spec(spec)
    except SpecError as e:
        return any(
            f in (path, holder) or (f.rpartition(".")[0] == holder and re.search(rf"\b{name}\b", message))
            for f, message in e.errors
        )
    return False


def probes(node: dict):
    """(value, whether the parser must take it) at and just past each limit and choice the schema states."""
    step = 1 if schema_types(node) & {"integer"} and "number" not in schema_types(node) else 0.01
    if "minimum" in node:
        yield node["minimum"], True
        yield node["minimum"] - step, False
    if "maximum" in node:
        yield node["maximum"], True
        yield node["maximum"] + step, False
    if "exclusiveMinimum" in node:
        yield node["exclusiveMinimum"], False
    if "exclusiveMaximum" in node:
        yield node["exclusiveMaximum"], False
    for value in node.get("enum", ()):
        yield value, True
    if "enum" in node:
        yield "no such choice", False
    if node.get("minLength") == 1:
        yield "", False


def test_every_limit_and_choice_of_the_schema_is_the_parsers():
    for cameractrl in (False, True):
        parse_spec(full_spec(cameractrl))  # the probes start from a spec the parser takes
    probed = []
    for path, node in leaves(JOB_SPEC):
        spec = full_spec(cameractrl=path.startswith("cameractrl"))
        for value, taken in probes(node):
            changed = set_at(spec, path, value)
            assert refused_at(changed, path) is not taken, f"{path} = {value!r}: the schema says {taken and 'valid'}"
            probed.append(path)
    for path in ("steps", "clip_skip", "context.mode", "cameractrl.scale", "references[0].weight", "version"):
        assert path in probed
    assert "camera.frames[0].depth" in probed and "free_init.spatial_cutoff" in probed


# --- the add-on's own specs against the served schema -----------------------------------------------------------


def test_the_add_ons_specs_validate_against_the_served_schema(extension, tiny_server, tmp_path):
    """Specs as the add-on builds them (job_spec.build_spec from a scene snapshot, with the captured camera path)
    validate against /openapi.json as served; a spec with a field the protocol lacks does not."""
    from backend import camera, job_spec

    with httpx.Client(base_url=tiny_server.url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        served = client.get("/openapi.json").json()
    schema = {"$ref": "#/components/schemas/JobSpec", "components": served["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    scene = scene_with_camera(tmp_path, frames=24, size=64)
    point_at(extension, tiny_server.url)
    s = scene.marionette
    settings = [
        {},
        {"use_pose": False, "use_context": True, "loop": True, "fuse": "flat", "prompts_from_markers": True},
        {"camera_motion": "auto", "motion_scale": 1.3, "free_init_iterations": 2},
        {"camera_motion": "cameractrl", "motion_module": "v3", "sparsectrl_model": "rgb", "use_init": True},
    ]
    scene.timeline_markers.new("a red puppet", frame=5)
    s.keyframes.add().frame = 1
    bpy.ops.marionette.lora_add()
    s.loras[0].name = "style"
    checked = []
    for values in settings:
        for name, value in values.items():
            setattr(s, name, value)
        snap = job_spec.snapshot(s, scene)
        frames = list(range(snap["frame_start"], snap["frame_end"] + 1))
        path = camera.camera_path(scene, frames, [None] * len(frames)) if s.camera_motion != "manual" else None
        spec = job_spec.build_spec(snap, path).to_dict()
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(spec)]
        assert not errors, (values, errors)
        checked.append(spec)
    assert {spec["camera_motion"] for spec in checked} == {"manual", "auto", "cameractrl"}
    assert checked[1]["context"]["loop"] and checked[1]["prompts"] and checked[3]["cameractrl"]["model"]
    assert checked[3]["init"] is not None and checked[0]["sparsectrl"]["keyframes"] == [0]
    with pytest.raises(jsonschema.ValidationError, match="colour"):
        validator.validate({**checked[0], "colour": "red"})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**checked[0], "context": {**(checked[1]["context"]), "mode": "sideways"}})
