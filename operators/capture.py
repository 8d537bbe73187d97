"""marionette.capture_guides: render the guides of the frame range into a folder (also used by Generate)."""

import json
from pathlib import Path

import bpy

from .. import preferences
from ..backend import camera, job_spec, keyframes, passes, pose_capture, scene_state, server_control, stylise_capture
from ..backend.client import ServerError
from ..server.protocol import FORM_POSE, GUIDE_FORM
from . import paths
from .images import named_image

POSE_IMAGE = "Marionette Pose Guide"


def capture(scene, snap: dict, folder: Path) -> tuple[dict, dict]:
    """Render the guides a job needs. Returns (guide files by form field, camera path). Leaves the scene as it was."""
    out: dict = {}
    for _ in capture_steps(scene, snap, folder, out):
        pass
    return out["files"], out["camera_path"]


def capture_steps(scene, snap: dict, folder: Path, out: dict):
    """`capture` one render per step, for a timer: yields (what, done, total, scene frame) after each render and
    the camera path, and fills `out` ("files", "camera_path") at the end. Guides render at the generation size
    (snap width × height). Every setting it changes is put back when the generator ends, fails or is closed."""
    frames = list(range(snap["frame_start"], snap["frame_end"] + 1))
    total = len(frames) + len(snap["keyframes"]) + stylise_capture.step_count(snap, len(frames)) + 1
    folder.mkdir(parents=True, exist_ok=True)
    with scene_state.preserved(scene):
        render = scene.render
        render.resolution_x, render.resolution_y, render.resolution_percentage = snap["width"], snap["height"], 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        rendered: dict = {}
        for done, _, frame in passes.iter_guides(scene, frames, folder, rendered):
            yield "guides", done, total, frame
        files = {}
        for kind in ("depth", "normal"):
            if kind in snap["guides"]:
                files[GUIDE_FORM[kind]] = [Path(p).read_bytes() for p in rendered[kind]]
        if snap["keyframes"]:
            written: list = []
            for done, _, frame in keyframes.iter_keyframes(scene, snap["keyframes"], folder, written):
                yield "keyframe", len(frames) + done, total, frame
            files["keyframe"] = [Path(p).read_bytes() for p in written]
        done = len(frames) + len(snap["keyframes"])
        for what, frame in stylise_capture.iter_styling(scene, snap, frames, folder, files):
            done += 1
            yield what, done, total, frame
        path = camera.camera_path(scene, frames, rendered["median_depth"])
        if "openpose" in snap["guides"]:
            files[FORM_POSE] = [capture_pose(scene, snap["openpose"], path, rendered["depth_raw"], folder)]
        yield "camera", total, total, frames[-1]
    out.update(files=files, camera_path=path)


def capture_pose(scene, settings: dict, path: dict, depth_raw: list, folder: Path) -> bytes:
    """The keypoints of every frame as the pose form file; also written to `folder/pose.json`."""
    frames = pose_capture.capture(
        scene,
        settings["characters"],
        path,
        depth_raw,
        hands=settings["hands"],
        own_body_hides=settings["own_body_hides"],
        thickness=settings["thickness"],
    )
    data = json.dumps(frames).encode()
    (folder / "pose.json").write_bytes(data)
    return data


def draw_pose_previews(client, pose_json: bytes, width: int, height: int, folder: Path) -> list[Path]:
    """The server draws each frame's pose image (controlnet-aux, as for a job); written as pose_0001.png..."""
    written = []
    for index, frame in enumerate(json.loads(pose_json)):
        path = folder / f"pose_{index + 1:04d}.png"
        path.write_bytes(client.draw_pose(frame, width, height))
        written.append(path)
    return written


def show_sequence(first: Path, count: int):
    """The pose images as one image sequence datablock, for the Image Editor."""
    image = named_image(POSE_IMAGE, first)
    image.source = "SEQUENCE" if count > 1 else "FILE"
    image.reload()


class MARIONETTE_OT_capture_guides(bpy.types.Operator):
    bl_idname = "marionette.capture_guides"
    bl_label = "Preview Guides"
    bl_description = (
        "Render the guides and the camera path of the frame range into a folder; with the Pose "
        "guide, the keypoints (pose.json) and, when the server answers, their pose images"
    )

    def execute(self, context):
        scene = context.scene
        snap = job_spec.snapshot(scene.marionette, scene)
        for problem in job_spec.problems(snap, scene.camera is not None):
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        folder = paths.new_job_dir(scene.marionette) / "guides"
        try:
            files, _path = capture(scene, snap, folder)
        except Exception as e:  # a failed render must not leave a half-changed scene or a traceback
            self.report({"ERROR"}, f"Capturing guides failed: {e}")
            return {"CANCELLED"}
        context.window_manager.marionette.job_dir = str(folder)
        message = f"Guides written to {folder}"
        if FORM_POSE in files:
            prefs = preferences.get(context)
            client = server_control.client_for(prefs)
            try:
                drawn = draw_pose_previews(client, files[FORM_POSE][0], snap["width"], snap["height"], folder)
                show_sequence(drawn[0], len(drawn))
                message += f'; pose images in the image "{POSE_IMAGE}"'
            except ServerError as e:
                message += f"; pose keypoints in pose.json (pose images need the server: {e})"
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_capture_guides,)
