"""Styling beyond the guides, through the installed extension: image references (a file, or the character rendered
alone on a neutral background), starting from the render (a beauty frame per frame), FreeInit and motion scale in
the panel, the spec and form parts the add-on builds, what the real server receives, and the batch's --reference."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from conftest import TOKEN
from panel_driver import draw_all, shown
from test_batch import MIXAMO, command, hero, record, server_args, server_folder
from test_extension import PACKAGE, point_at, scene_with_camera

from backend.client import Client
from backend.png import read_png, write_png
from server.protocol import guide_errors

pytestmark = pytest.mark.blender  # Blender-side: `make test` runs it on Blender 4.5 and 5.0


def ext(module):
    return sys.modules[f"{PACKAGE}.{module}"]


def studio(tmp_path, frames=3, size=96):
    """The extension's test scene on Cycles (2 samples), with a coloured world, a wall behind the cube (seen from
    the scene camera and from a side camera), a prop, a sun and an object already hidden from renders."""
    scene = scene_with_camera(tmp_path, frames=frames, size=size)
    scene.render.resolution_y = size * 3 // 4
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.device = 2, "CPU"
    world = bpy.data.worlds.new("Sky")
    world.color = (0.1, 0.3, 0.8)
    scene.world = world
    cube = bpy.data.objects["Cube"]
    cube.location.x = 0.0
    cube.keyframe_insert("location", frame=1)
    cube.location.x = 1.2
    cube.keyframe_insert("location", frame=frames)
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 4, 0), rotation=(math.pi / 2, 0, 0))
    bpy.context.object.name = "Wall"
    bpy.ops.mesh.primitive_plane_add(size=30, location=(-4, 0, 0), rotation=(0, math.pi / 2, 0))
    bpy.context.object.name = "Side wall"
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.3, location=(0, -2, 3))
    bpy.context.object.name = "Hidden"
    bpy.context.object.hide_render = True
    bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.2, 0.3))
    bpy.ops.object.camera_add(location=(6, 0, 0.5), rotation=(math.pi / 2, 0, math.pi / 2))
    side = bpy.context.object
    side.name = "Side"
    scene.frame_set(2)
    return scene, cube, side


def scene_state(scene):
    return {
        "engine": scene.render.engine,
        "film": scene.render.film_transparent,
        "filepath": scene.render.filepath,
        "size": (scene.render.resolution_x, scene.render.resolution_y),
        "world": scene.world.name,
        "world colour": tuple(scene.world.color),
        "worlds": len(bpy.data.worlds),
        "frame": scene.frame_current,
        "camera": scene.camera.name,
        "hidden": {o.name: o.hide_render for o in scene.objects},
    }


def add_reference(settings, **values):
    bpy.ops.marionette.reference_add()
    item = settings.references[-1]
    for name, value in values.items():
        setattr(item, name, value)
    return item


def remembered_catalog(tmp_path, **kinds):
    catalog = ext("backend.catalog")
    catalog.clear()
    file = tmp_path / "catalog.json"
    file.write_text(json.dumps({"base": ["sd15"], "motion_module": ["v2"], "motion_info": {}, **kinds}))
    catalog.load(file)


def test_a_rendered_reference_is_the_character_alone_on_neutral_grey_and_the_scene_comes_back(extension, tmp_path):
    scene, cube, side = studio(tmp_path)
    reference_render = ext("backend.reference_render")
    subject = ext("backend.subject")
    before = scene_state(scene)
    path = tmp_path / "reference.png"
    assert reference_render.render_reference(scene, subject.subject_objects(cube), 3, side, path) == path
    image = read_png(path)
    assert image.shape == (72, 96, 3)
    neutral = np.all(image == reference_render.NEUTRAL, axis=2)
    # the walls fill the whole view behind the cube from both cameras: hidden, the background is exactly grey
    assert neutral[:, :8].all() and neutral[:, -8:].all() and neutral[:6].all()
    assert 0.05 < (~neutral).mean() < 0.6, "the cube shows, lit, over the grey"
    assert not neutral[36, 48], "the character is in the middle"
    assert scene_state(scene) == before, "the scene is left exactly as it was"
    # the world used for the render was a temporary one: no new datablock remains
    assert [w.name for w in bpy.data.worlds] == ["Sky"]


def test_capture_renders_start_frames_and_references_and_the_spec_passes_the_servers_checks(extension, tmp_path):
    scene, cube, side = studio(tmp_path)
    settings = scene.marionette
    settings.use_init, settings.init_strength, settings.init_engine = True, 0.35, "WORKBENCH"
    png = tmp_path / "look.png"
    write_png(png, np.full((30, 40, 3), (200, 40, 30), np.uint8))
    jpeg = bpy.data.images.new("look", 20, 10)
    jpeg.pixels.foreach_set(np.tile([0.2, 0.6, 0.2, 1.0], 200).astype(np.float32))
    jpeg.filepath_raw, jpeg.file_format = str(tmp_path / "look.jpg"), "JPEG"
    jpeg.save()
    bpy.data.images.remove(jpeg)
    bpy.ops.object.select_all(action="DESELECT")
    bpy.context.view_layer.objects.active = None
    remembered_catalog(tmp_path, ip_adapter=["ip_adapter", "ip_plus"])  # an empty model: the server's first
    add_reference(settings, image_path=str(png), weight=0.7)
    add_reference(settings, image_path=str(tmp_path / "look.jpg"), whole_clip=False, first=2, last=3)
    add_reference(settings, source="RENDER", subject=cube, frame=3, camera=side, model="ip_plus", start=0.2)
    settings.free_init_iterations, settings.motion_scale = 3, 1.3
    before = scene_state(scene)

    snap = ext("backend.job_spec").snapshot(settings, scene)
    out: dict = {}
    steps = [
        (what, done, total)
        for what, done, total, _ in ext("operators.capture").capture_steps(scene, snap, tmp_path / "guides", out)
    ]
    # one render (or one reference) per step, so a timer tick never holds Blender longer than one render
    styling = [(what, done) for what, done, _ in steps if what != "guides"]
    assert styling == [("init", 4), ("init", 5), ("init", 6)] + [("reference", n) for n in (7, 8, 9)] + [("camera", 10)]
    assert {total for _, _, total in steps} == {10}
    files, path = out["files"], out["camera_path"]
    assert scene_state(scene) == before, "engine, film, world, hide flags, frame and camera all come back"

    init = [read_png_bytes(b) for b in files["init"]]
    assert len(init) == 3 and all(i.shape == (72, 96, 3) for i in init)
    assert not np.array_equal(init[0], init[2]), "one beauty frame per scene frame: the cube moved"
    refs = files["reference"]
    assert len(refs) == 3 and refs[0] == png.read_bytes(), "a PNG file goes as it is, in the list's order"
    converted = read_png_bytes(refs[1])
    assert converted.shape == (10, 20, 3) and np.abs(converted.astype(int) - (51, 153, 51)).max() <= 40
    rendered = read_png_bytes(refs[2])
    assert rendered.shape == (72, 96, 3) and (rendered[0, 0] == ext("backend.reference_render").NEUTRAL).all()

    job_spec = ext("backend.job_spec")
    spec = job_spec.with_guides(job_spec.build_spec(snap), path, files)  # parse_spec and guide_errors, as the server
    assert [(r.model, r.weight, r.start, r.first, r.last) for r in spec.references] == [
        ("ip_adapter", pytest.approx(0.7), 0.0, 0, None),
        ("ip_adapter", pytest.approx(0.6), 0.0, 1, 2),
        ("ip_plus", pytest.approx(0.6), pytest.approx(0.2), 0, None),
    ]
    assert spec.init.strength == pytest.approx(0.35) and spec.free_init.iterations == 3
    assert spec.motion_scale == pytest.approx(1.3)
    counts = {name: len(parts) for name, parts in files.items()}
    assert guide_errors(spec, counts) == []
    assert [f for f, _ in guide_errors(spec, {**counts, "init": 2, "reference": 2})] == ["reference", "init"]
    with pytest.raises(ext("server.protocol").SpecError, match="init"):  # the extension's own copy of the class
        job_spec.with_guides(spec, path, {**files, "init": files["init"][:2]})
    ext("backend.catalog").clear()


def read_png_bytes(data: bytes) -> np.ndarray:
    path = Path(bpy.app.tempdir or "/tmp") / "marionette_test_part.png"
    path.write_bytes(data)
    return read_png(path)


def test_eevee_is_named_as_this_blender_names_it(extension, tmp_path):
    scene = scene_with_camera(tmp_path)
    beauty = ext("backend.beauty")
    engines = {item.identifier for item in scene.render.bl_rna.properties["engine"].enum_items}
    eevee = beauty.engine_id(scene, "EEVEE")
    assert eevee in engines
    assert eevee == ("BLENDER_EEVEE" if bpy.app.version >= (5, 0) else "BLENDER_EEVEE_NEXT")
    scene.render.engine = "CYCLES"
    assert beauty.engine_id(scene, "SCENE") == "CYCLES"
    assert beauty.engine_id(scene, "WORKBENCH") == "BLENDER_WORKBENCH"


def test_the_panel_says_how_to_get_an_ip_adapter_and_draws_every_styling_state(extension, tmp_path):
    scene, cube, _side = studio(tmp_path)
    settings = scene.marionette
    catalog = ext("backend.catalog")
    catalog.clear()
    assert "Server models unknown: start the server, then Refresh Models" in shown(draw_all())

    remembered_catalog(tmp_path)  # a server without an ip_adapter entry
    text = shown(draw_all())
    assert "References need an IP-Adapter model on the server, and it has none" in text
    assert ("operator", "marionette.reference_add") not in draw_all(), "not offered without an IP-Adapter"

    remembered_catalog(tmp_path, ip_adapter=["ip_adapter", "ip_plus"])
    log = draw_all()
    assert ("operator", "marionette.reference_add") in log and "IP-Adapter model" not in shown(log)
    assert "Add an image whose look the frames take" in shown(log)
    add_reference(settings)  # nothing selected: an image file
    text = shown(draw_all())
    assert "Reference 1: choose an image file, or set its source to Render" in text, "Generate says what to do"
    settings.references[0].image_path = str(tmp_path / "missing.png")
    assert f"the image {tmp_path / 'missing.png'} does not exist" in shown(draw_all())
    bpy.context.view_layer.objects.active = cube
    item = add_reference(settings, frame=2, whole_clip=False, first=0, last=9)
    assert item.source == "RENDER" and item.subject == cube, "the active object is the character to render"
    log = draw_all()
    assert ("prop", "subject") in log and ("prop", "first") in log
    text = shown(log)
    assert "Renders 'Cube' alone at frame 2 on a neutral grey background with the scene's engine" in text
    assert "Reference 2: frames 0-9 reach outside the frame range 1-3" in text

    assert "Off: the frames are made from noise" in shown(draw_all())
    settings.use_init, settings.init_engine = True, "WORKBENCH"
    log = draw_all()
    assert ("prop", "init_strength") in log and ("prop", "init_engine") in log
    assert "Every frame is rendered with Workbench before the job is sent" in shown(log)
    assert "0 keeps the render unchanged, 1 ignores it" in shown(log)
    settings.init_engine = "EEVEE"
    assert "Every frame is rendered with Eevee" in shown(draw_all())

    settings.references.clear()  # no refusal left: the estimate shows under Generate
    assert "FreeInit off (1 iteration)" in shown(draw_all())
    settings.free_init_iterations, settings.motion_scale = 3, 0.8
    text = shown(draw_all())
    assert "each iteration runs the whole generation again (3x the time)" in text
    assert "FreeInit: the whole generation runs 3 times" in text, "the estimate under Generate counts it"
    assert "Motion calmer than the motion module was trained for" in text
    catalog.clear()


def test_motion_scales_per_window_reach_the_spec_or_say_what_to_fix(extension, tmp_path):
    scene = scene_with_camera(tmp_path, frames=24)
    settings = scene.marionette
    generate, job_spec = ext("operators.generate"), ext("backend.job_spec")
    settings.window_motion_scales = "1, 1.5"  # 24 frames in windows of 16 overlapping by 4: two windows
    assert generate.refusals(bpy.context) == []
    spec = job_spec.build_spec(job_spec.snapshot(settings, scene))
    assert spec.context.motion_scales == [1.0, 1.5] and spec.motion_scale == 1.0
    assert "2 context window(s): one value each" in shown(draw_all())
    settings.window_motion_scales = "1"
    assert generate.refusals(bpy.context) == [
        "context.motion_scales: 1 values for 2 windows (24 frames, windows of 16 overlapping by 4); give one per "
        "window or none"
    ]
    settings.window_motion_scales = "1, fast"
    assert generate.refusals(bpy.context) == [
        "Motion scales per window: 'fast' is not a number; give numbers separated by commas"
    ]
    scene.frame_end = 8
    settings.window_motion_scales = "1, 1.5"
    assert (
        "Motion scales per window need context windows, and the clip runs in one" in generate.refusals(bpy.context)[0]
    )


def test_generate_sends_references_and_start_frames_to_the_server(extension, tiny_server, tmp_path):
    scene, cube, side = studio(tmp_path, frames=4)
    scene.render.engine = "BLENDER_WORKBENCH"
    settings = scene.marionette
    png = tmp_path / "look.png"
    write_png(png, np.full((24, 24, 3), (30, 60, 200), np.uint8))
    bpy.context.view_layer.objects.active = None
    ext("backend.catalog").clear()  # no model picked and no list known: the spec's default name, "ip_adapter"
    add_reference(settings, image_path=str(png), weight=0.8)
    add_reference(settings, source="RENDER", subject=cube, camera=side, whole_clip=False, first=3, last=4)
    settings.use_init, settings.init_strength = True, 0.5
    settings.free_init_iterations, settings.motion_scale = 2, 1.2
    point_at(extension, tiny_server.url)
    before = scene_state(scene)
    assert bpy.ops.marionette.generate() == {"FINISHED"}
    runtime = bpy.context.window_manager.marionette
    assert runtime.frames_received == 4 and not runtime.error
    assert scene_state(scene) == before
    # What the server recorded of the job: every part arrived (counted per form field) and the spec's fields.
    manifest = Client(tiny_server.url, TOKEN).fetch(f"/jobs/{runtime.job_id}/manifest")
    manifest = json.loads(manifest)
    assert manifest["guides"] == {"depth": 4, "normal": 4, "reference": 2, "init": 4}
    sent = manifest["spec"]
    assert [(round(r["weight"], 4), r["first"], r["last"]) for r in sent["references"]] == [(0.8, 0, None), (0.6, 2, 3)]
    assert sent["init"] == {"strength": 0.5}
    assert sent["free_init"]["iterations"] == 2 and sent["motion_scale"] == pytest.approx(1.2)
    guides = Path(runtime.job_dir) / "guides"
    assert sorted(p.name for p in guides.glob("init_*.png")) == [f"init_{i:04d}.png" for i in range(1, 5)]
    # the IP-Adapter ran on exactly the images the add-on sent: the file as it is, then the render it made
    sent_images = [png.read_bytes(), (guides / "reference_0002.png").read_bytes()]
    assert [r["image_sha256"] for r in manifest["plan"]["references"]] == [
        hashlib.sha256(data).hexdigest() for data in sent_images
    ]
    assert [r["model"] for r in manifest["plan"]["references"]] == ["ip_adapter", "ip_adapter"]
    # the video-to-video start frames the server used are the add-on's beauty renders, in frame order
    frames = b"".join((guides / f"init_{i:04d}.png").read_bytes() for i in range(1, 5))
    assert manifest["init"]["sha256"] == hashlib.sha256(frames).hexdigest() and manifest["init"]["frames"] == 4
    assert manifest["plan"]["sampling"]["free_init_iterations"] == 2


def test_batch_reference_and_init_strength_reach_every_job(extension, tiny_server, tmp_path, capfd):
    blend = tmp_path / "hero.blend"
    hero(blend)
    look = tmp_path / "look.png"
    write_png(look, np.full((16, 16, 3), (220, 180, 20), np.uint8))
    out = tmp_path / "out"
    argv = server_args(tiny_server, out, "--actions", MIXAMO, "--depth", "--reference", f"{look}:0.9")
    argv += ["--reference", str(look), "--init-strength", "0.4", "--init-engine", "workbench", "--free-init", "2"]
    assert command(extension, blend, *argv) == 0, capfd.readouterr().out
    rec = record(out, "Armature_mixamo.com_Layer0")
    manifest = json.loads((server_folder(tiny_server, rec["directions"][0]["job_id"]) / "manifest.json").read_text())
    assert manifest["guides"] == {"depth": 2, "reference": 2, "init": 2}
    assert [r["weight"] for r in manifest["spec"]["references"]] == [pytest.approx(0.9), pytest.approx(0.6)]
    assert manifest["spec"]["init"]["strength"] == pytest.approx(0.4)
    assert manifest["spec"]["free_init"]["iterations"] == 2

    assert command(extension, blend, *server_args(tiny_server, out, "--reference", str(tmp_path / "no.png"))) == 2
    assert "no image file" in capfd.readouterr().err
    assert command(extension, blend, *server_args(tiny_server, out, "--motion-scale", "5")) == 2
    assert "give a number from 0 to 3" in capfd.readouterr().err
