"""The batch: per action (and per direction), generate through the extension's own operator, cut the alpha from
the character's silhouette, write RGBA frames, sprite sheet + JSON, and a record that lets a re-run skip it."""

from __future__ import annotations

import json
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np

from .. import preferences
from ..backend import camera, job_spec, launcher, server_control
from ..backend.client import ServerError
from ..backend.model_errors import artist_message
from ..backend.png import read_png, write_png
from ..operators import generate as generate_op
from ..operators import model_roots
from . import directions, fingerprint, media, names, options, pivot, sheets, silhouette, styling, terminal

RECORD = "batch.json"


class Stop(Exception):
    """Ctrl-C: the batch ends after what it is doing, with exit code 130."""


def main(argv: list[str]) -> int:
    try:
        args = options.parse(argv)
    except SystemExit as e:  # --help or a bad option: argparse already printed why
        return int(e.code or 0)
    scene = bpy.context.scene
    try:
        armature, actions, objects = resolve(args, scene)
    except ValueError as e:
        print(f"marionette batch: {e}")
        return 2
    configure(args, scene)
    progress = terminal.Progress()
    try:
        with server(args) as client:
            return Batch(args, scene, armature, actions, objects, client, progress).run()
    except (launcher.LaunchError, ServerError) as e:
        progress.line(f"marionette batch: {e}")
        return 1
    finally:
        progress.close()


def resolve(args, scene):
    """The armature, the actions (name → action) and the silhouette's objects; ValueError says what to fix."""
    armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    listed = ", ".join(repr(o.name) for o in armatures) or "none"
    if args.armature:
        armature = bpy.data.objects.get(args.armature)
        if armature is None or armature.type != "ARMATURE":
            raise ValueError(f"no armature {args.armature!r}; armatures in the file: {listed}")
    elif len(armatures) == 1:
        armature = armatures[0]
    else:
        raise ValueError(f"name the character with --armature; armatures in the file: {listed}")
    if args.camera:
        cam = bpy.data.objects.get(args.camera)
        if cam is None or cam.type != "CAMERA":
            cams = ", ".join(repr(o.name) for o in bpy.data.objects if o.type == "CAMERA") or "none"
            raise ValueError(f"no camera {args.camera!r}; cameras in the file: {cams}")
        scene.camera = cam
    if scene.camera is None:
        raise ValueError("the scene has no camera: add one or name it with --camera")
    wanted = [n.strip() for n in args.actions.split(",") if n.strip()] or [a.name for a in bpy.data.actions]
    missing = [n for n in wanted if n not in bpy.data.actions]
    if missing:
        raise ValueError(
            f"unknown actions {missing}; actions in the file: "
            f"{', '.join(repr(a.name) for a in bpy.data.actions) or 'none'}"
        )
    if not wanted:
        raise ValueError("the file has no actions")
    return armature, {n: bpy.data.actions[n] for n in wanted}, silhouette.character_objects(armature, args.collection)


def configure(args, scene):
    settings = scene.marionette
    settings.prompt, settings.negative_prompt, settings.seed = args.prompt, args.negative, args.seed
    for name, value in (
        ("steps", args.steps),
        ("guidance", args.guidance),
        ("base", args.base),
        ("vae", args.vae),
        ("clip_skip", args.clip_skip),
        ("prompt_weighting", args.prompt_weighting),
        ("motion_module", args.motion_module),
    ):
        if value is not None:
            setattr(settings, name, value)
    if args.size:
        scene.render.resolution_x, scene.render.resolution_y = args.size
        scene.render.resolution_percentage = 100
    # Sprites are made at the render size (`--size` or the scene's): Marionette generates at it, and the
    # silhouettes and pivots are rendered at the same size.
    scale = scene.render.resolution_percentage / 100
    settings.long_side = round(max(scene.render.resolution_x, scene.render.resolution_y) * scale)
    scene.render.resolution_x, scene.render.resolution_y = settings.generation_size(scene)
    scene.render.resolution_percentage = 100
    weights = {kind: getattr(args, kind) for kind in ("depth", "normal", "pose")}
    if any(w is not None for w in weights.values()):
        for kind, weight in weights.items():
            setattr(settings, f"use_{kind}", weight is not None)
            if weight is not None:
                setattr(settings, f"{kind}_weight", weight)
    settings.use_scene_range, settings.loop = True, args.loop
    styling.apply(args, settings)
    settings.import_compositor = settings.import_sequencer = settings.import_camera_background = False


@contextmanager
def server(args):
    """A client for --server, a server started on --models-config, the preferences' server URL, or a server
    started as the preferences say; a server started here stops at the end."""
    prefs = preferences.get()
    saved = prefs.server_url, prefs.token
    process = None
    try:
        if args.server:
            prefs.server_url, prefs.token = args.server, args.token
        elif args.models_config or args.model_root or not prefs.server_url:
            models = args.models_config or prefs.models_file
            server_args = ["--port", "0", "--data", str((args.out / "server").resolve())]
            if models:
                server_args += ["--models", str(Path(bpy.path.abspath(str(models))).resolve())]
            for root in [str(r.expanduser().resolve()) for r in args.model_root] or model_roots.roots(prefs):
                server_args += ["--model-root", root]
            print(f"starting the server{' on ' + str(models) if models else ''} ...", flush=True)
            process = launcher.start(
                args.server_python or prefs.server_python or None, server_args, log=args.out / "server.log"
            )
            prefs.server_url, prefs.token = process.url, ""
        elif args.token:
            prefs.token = args.token
        yield server_control.client_for(prefs)
    finally:
        prefs.server_url, prefs.token = saved
        if process is not None:
            process.stop()


def use_action(armature, action) -> tuple[int, int]:
    """Make `action` the armature's active action (and its first slot on Blender 4.4+)."""
    data = armature.animation_data or armature.animation_data_create()
    data.action = action
    slots = getattr(action, "slots", None)
    if slots and hasattr(data, "action_slot") and data.action_slot is None:
        data.action_slot = slots[0]
    return tuple(round(v) for v in action.frame_range)


class Batch:
    def __init__(self, args, scene, armature, actions, objects, client, progress):
        self.args, self.scene, self.armature, self.actions = args, scene, armature, actions
        self.objects, self.client, self.progress = objects, client, progress
        self.safe = names.unique_names(list(actions))
        self.interrupt = terminal.Interrupt(self._cancel)
        self.center = None

    def _cancel(self):
        """Signal handler (first Ctrl-C): only a raw write and the cancel request, which runs in its own thread."""
        self.progress.interject("Ctrl-C: cancelling the server's job (Ctrl-C again quits at once) ...")
        generate_op.cancel_active()

    def run(self) -> int:
        results = []
        with self.interrupt:
            for k, (name, action) in enumerate(self.actions.items(), 1):
                tag = f"[{k}/{len(self.actions)}] {name}"
                t = time.perf_counter()
                try:
                    state, detail = self.action(tag, name, action)
                except Stop as e:
                    results.append((name, "cancelled", str(e), time.perf_counter() - t))
                    self.progress.line(f"{tag}: cancelled, {e}")
                    break
                except Exception as e:  # noqa: BLE001 - one failing action must not stop the others
                    state, detail = "FAILED", (str(e).strip() or repr(e)).splitlines()[0]
                results.append((name, state, detail, time.perf_counter() - t))
                self.progress.line(f"{tag}: {state} {detail}")
                if self.interrupt.requested:
                    break
        self.summary(results)
        if self.interrupt.requested:
            return 130
        return 1 if any(r[1] == "FAILED" for r in results) else 0

    def summary(self, results):
        width = max(len(r[0]) for r in results) if results else 6
        self.progress.line(f"{'action':<{width}}  {'result':<9}  {'seconds':>7}  detail")
        for name, state, detail, seconds in results:
            self.progress.line(f"{name:<{width}}  {state:<9}  {seconds:7.1f}  {detail}")
        for name in list(self.actions)[len(results) :]:
            self.progress.line(f"{name:<{width}}  {'not run':<9}  {'':>7}")

    def action(self, tag: str, name: str, action) -> tuple[str, str]:
        args, scene = self.args, self.scene
        folder = args.out / self.safe[name]
        start, end = use_action(self.armature, action)
        scene.frame_start, scene.frame_end = start, end
        frames = list(range(start, end + 1))
        record_path = folder / RECORD
        with self.cameras(start) as views:
            identity = self.fingerprint(action, frames, views)
            if not args.force and record_path.exists():
                old = json.loads(record_path.read_text())
                if old.get("state") == "done" and old.get("fingerprint") == identity:
                    return "skipped", "unchanged since the last run"
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            fps = scene.render.fps / scene.render.fps_base
            record = {
                "action": name,
                "folder": folder.name,
                "armature": self.armature.name,
                "state": "running",
                "fingerprint": identity,
                "frame_start": start,
                "frame_end": end,
                "fps": fps,
                "loop": args.loop,
                "prompt": args.prompt,
                "seed": args.seed,
                "directions": [],
                "turn_centre": list(self.center) if len(views) > 1 else None,
            }
            rows = []
            for _d, (yaw, cam) in enumerate(views):
                where = f"{tag}{f' yaw {yaw:g}' if len(views) > 1 else ''}"
                sub = folder / f"yaw_{round(yaw):03d}" if len(views) > 1 else folder
                job = self.generate(where, cam, folder)
                record["directions"].append(
                    {
                        "yaw": yaw,
                        "camera": [list(r) for r in cam.matrix_world],
                        "folder": sub.name if sub != folder else ".",
                        "job": str(job),
                        "job_id": bpy.context.window_manager.marionette.job_id,
                    }
                )
                received = sorted(job.glob("frame_*.png"))
                if self.interrupt.requested or len(received) != len(frames):
                    record["state"] = "cancelled" if self.interrupt.requested else "incomplete"
                    record_path.write_text(json.dumps(record, indent=2))
                    if self.interrupt.requested:
                        raise Stop(f"{len(received)} frames of this direction kept in {job}")
                    raise RuntimeError(f"{len(received)} of {len(frames)} frames arrived (job folder {job})")
                row_name = f"{folder.name}_{sub.name}" if sub != folder else folder.name
                rows.append(self.cut(sub, received, cam, frames, row_name, yaw))
            meta = {"action": name, "armature": self.armature.name, "frame_start": start, "frame_end": end}
            sheets.build(rows, folder / "sprite.png", fps, args.loop, meta, trim=args.trim, columns=args.columns)
            notes = self.videos(folder, [folder / r["folder"] for r in rows], fps)
            record["state"] = "done"
            record_path.write_text(json.dumps(record, indent=2))
        return "done", f"{len(frames)} frames x {len(rows)} direction(s) -> {folder}{notes}"

    @contextmanager
    def cameras(self, start: int):
        """[(yaw, camera)]: the scene camera, or N cameras about the character's ground contact at `start`."""
        if self.args.directions == 1:
            yield [(0.0, self.scene.camera)]
            return
        self.scene.frame_set(start)
        self.center = pivot.ground_contact(self.armature)
        with directions.direction_cameras(self.scene, self.args.directions, self.center, start) as views:
            yield views

    def fingerprint(self, action, frames: list[int], views) -> str:
        scene = self.scene
        spec = job_spec.build_spec(job_spec.snapshot(scene.marionette, scene)).to_dict()
        checked = {**spec, "camera_motion": "manual", "camera": None, "cameractrl": None}
        try:
            plan = self.client.plan(checked, wait_for_hashes=True)
        except ServerError as e:
            raise RuntimeError(artist_message(e, checked, batch=True)) from None
        cams, current = [], scene.frame_current
        try:
            for _, cam in views:
                path = []
                for f in frames:
                    scene.frame_set(f)
                    path.append(
                        [[round(v, 5) for v in row] for row in camera.world_to_camera(cam)]
                        + [[round(v, 3) for row in camera.intrinsics(scene, cam) for v in row]]
                    )
                cams.append(path)
        finally:
            scene.frame_set(current)
        a = self.args
        return fingerprint.digest(
            {
                "spec": spec,
                # with their files' sha256 (the plan waited for them): a changed file redoes the action
                "models": {
                    k: plan.get(k) for k in ("base", "vae", "motion_module", "controlnets", "loras", "embeddings")
                },
                "frames": [frames[0], frames[-1]],
                "action": fingerprint.action_keys(action),
                "armature": self.armature.name,
                "cameras": cams,
                "silhouette": sorted(o.name for o in self.objects),
                "references": [fingerprint.file_digest(path) for path, _ in a.reference],
                "output": {
                    "trim": a.trim,
                    "columns": a.columns,
                    "alpha_samples": a.alpha_samples,
                    "gif": a.gif,
                    "mp4": a.mp4,
                },
            }
        )

    def generate(self, where: str, cam, folder: Path) -> Path:
        """One job through marionette.generate; returns its folder (frames received so far are in it)."""
        scene, runtime = self.scene, bpy.context.window_manager.marionette
        scene.camera, runtime.job_id = cam, ""
        scene.marionette.output_dir = str((folder / "jobs").resolve())
        steps, total = scene.marionette.steps, scene.frame_end - scene.frame_start + 1

        def listen(kind, data, rt):
            if self.interrupt.requested and kind == "submitted":  # Ctrl-C came before this job existed
                generate_op.cancel_active()
            if kind == "step":
                self.progress.update(f"{where}: step {data['i']}/{data['n']}, frame 0/{total}")
            elif kind == "frame":
                self.progress.update(f"{where}: step {steps}/{steps}, frame {rt.frames_received}/{total}")

        if self.interrupt.requested:
            raise Stop("stopped before this direction started")
        self.progress.update(f"{where}: rendering guides ...")
        generate_op.progress_listener = listen
        try:
            with terminal.quiet(self.args.out / "blender.log", self.args.verbose):
                result = bpy.ops.marionette.generate()
        except RuntimeError as e:
            raise RuntimeError(runtime.error or str(e)) from None
        finally:
            generate_op.progress_listener = None
        if result != {"FINISHED"} and not self.interrupt.requested:
            raise RuntimeError(runtime.error or runtime.status or "generation did not finish")
        return Path(runtime.job_dir)

    def cut(self, sub: Path, received: list[Path], cam, frames: list[int], name: str, yaw: float) -> dict:
        """RGBA frames: the generated colour with the character's silhouette as alpha."""
        scene = self.scene
        scene.camera = cam
        with terminal.quiet(self.args.out / "blender.log", self.args.verbose):
            alphas = silhouette.render_alpha(scene, self.objects, frames, self.args.alpha_samples)
        pivots = pivot.projected_contacts(scene, self.armature, cam, frames)
        sub.mkdir(parents=True, exist_ok=True)
        images = []
        for path, alpha in zip(received, alphas):
            rgb = read_png(path)[:, :, :3]
            if rgb.shape[:2] != alpha.shape:
                raise RuntimeError(
                    f"frame {path.name} is {rgb.shape[1]}x{rgb.shape[0]} but the render is "
                    f"{alpha.shape[1]}x{alpha.shape[0]}"
                )
            rgba = np.dstack([rgb, alpha])
            write_png(sub / path.name, rgba)
            images.append(rgba)
        return {
            "name": name,
            "frames": images,
            "pivots": pivots,
            "yaw": yaw,
            "folder": sub.name if sub.name.startswith("yaw_") else ".",
        }

    def videos(self, folder: Path, subs: list[Path], fps: float) -> str:
        wanted = [s for on, s in ((self.args.gif, ".gif"), (self.args.mp4, ".mp4")) if on]
        if not wanted:
            return ""
        if media.ffmpeg() is None:
            return " (no GIF/MP4: Blender's Python lacks the imageio-ffmpeg package)"
        for sub in subs:
            for suffix in wanted:
                media.write_video(sub, fps, sub / f"animation{suffix}")
        return ""
