"""marionette.generate and marionette.cancel.

Generate captures the guides on the main thread, then a worker thread talks to the server while a modal timer
applies its messages to Blender. In background mode (`blender -b`, the bpy module) there is no event loop, so the
same operator runs the job to its end before returning.
"""

import time

import bpy

from .. import preferences
from ..backend import compositing, job_spec, server_control
from ..backend.generation import Generation
from ..backend.launcher import LaunchError
from ..server.protocol import SpecError
from . import paths, server
from .capture import capture
from .images import named_image

_active: Generation | None = None
# Headless callers (the batch command) may set this to follow a job: called with (kind, data, runtime) for each
# message instead of the plain status print.
progress_listener = None


def _client(context):
    prefs = preferences.get(context)
    return server_control.client(prefs.server_url, prefs.port, prefs.token)


def _with_server(starter, generation: Generation):
    """The preflight phase, after starting (or adopting) the local server with its progress as messages."""
    def run():
        try:
            generation.client = starter(lambda text: generation.messages.put(("server", {"message": text})))
        except LaunchError as e:
            generation.messages.put(("error", {"message": str(e), "status": -1}))
            generation.finished.set()
            return
        generation.preflight()
    return run


def _targets(settings) -> set[str]:
    return {name for name, on in (("COMPOSITOR", settings.import_compositor),
                                  ("SEQUENCER", settings.import_sequencer),
                                  ("CAMERA_BACKGROUND", settings.import_camera_background)) if on}


def _import(context, generation: Generation, count: int):
    """Show the frames received so far; called again as more arrive, it updates rather than adds."""
    settings = context.scene.marionette
    targets = _targets(settings)
    if targets:  # none chosen (e.g. the batch): the frames stay files in the job folder
        compositing.import_result(context.scene, generation.out_dir, count, generation.spec.frame_start,
                                  targets, settings.over_render)


PREVIEW_IMAGE = "Marionette Preview"


def _show_preview(path):
    """The latest step preview as an image datablock the panel shows (and any Image Editor can)."""
    if path.exists():
        named_image(PREVIEW_IMAGE, path).preview_ensure()


def describe_motion_loras(motion_loras: list) -> str:
    """The job's camera motion LoRAs as one short line for the panel, e.g. "pan left 0.8, zoom in 0.35"."""
    if not motion_loras:
        return "no camera motion (static or shaking): no LoRA"
    return ", ".join(f"{m['name'].replace('_', ' ')} {m['weight']:g}" for m in motion_loras)


def apply_messages(context, generation: Generation, messages) -> str | None:
    """Apply worker messages to Blender (main thread). Returns the final event's kind once the job has ended."""
    runtime = context.window_manager.marionette
    frames, steps = generation.spec.frames, generation.spec.steps
    final = None
    for kind, data in messages:
        if kind == "server":
            runtime.status = runtime.server = data["message"]
        elif kind == "planned":
            for note in data.get("notes", []):
                runtime.status = note
        elif kind == "submitted":
            runtime.job_id = data["id"]
            runtime.status = "Queued"
        elif kind == "queued" and data.get("position"):
            runtime.status = f"Queued behind {data['position']} job(s)"
        elif kind == "loading":
            runtime.status = "Loading models"
        elif kind == "step":
            runtime.status = f"Step {data['i']}/{data['n']}"
            runtime.progress = 0.9 * data["i"] / steps
            _show_preview(generation.out_dir / "preview.png")
        elif kind == "frame":
            runtime.frames_received += 1
            runtime.status = f"Frame {runtime.frames_received}/{frames}"
            runtime.progress = 0.9 + 0.1 * runtime.frames_received / frames
            _import(context, generation, runtime.frames_received)
        elif kind in ("done", "error", "cancelled"):
            final = kind
            runtime.running = False
            received = runtime.frames_received
            if kind == "done":
                runtime.progress = 1.0
                runtime.status = f"Done: {received} frames in {generation.out_dir}"
                if generation.spec.camera_motion == "auto":
                    runtime.camera_match = describe_motion_loras(data.get("motion_loras", []))
            elif kind == "cancelled":
                runtime.status = f"Cancelled; {received} frames kept in {generation.out_dir}"
            else:
                runtime.error = data.get("message", "unknown error")
                if data.get("status") == 0:  # unreachable: say where to look
                    runtime.error += (f". Start it in Marionette > Server, or check the Server URL in the "
                                      f"preferences; server log: {server_control.log_path(paths.server_data_dir())}")
                runtime.status = f"Failed; {received} frames kept"
        if progress_listener is not None:
            progress_listener(kind, data, runtime)
        elif bpy.app.background and kind in ("step", "frame", "done", "error", "cancelled"):
            print(f"Marionette: {runtime.status}", flush=True)  # headless: the terminal is the status bar
    return final


class MARIONETTE_OT_generate(bpy.types.Operator):
    bl_idname = "marionette.generate"
    bl_label = "Generate"
    bl_description = "Capture the guides and generate the animation on the Marionette server"

    _timer = None

    def execute(self, context):
        global _active
        scene, runtime = context.scene, context.window_manager.marionette
        if _active is not None and not _active.finished.is_set():
            self.report({"ERROR"}, "A generation is already running: cancel it or wait")
            return {"CANCELLED"}
        snap = job_spec.snapshot(scene.marionette, scene)
        problems = job_spec.problems(snap, scene.camera is not None)
        if not problems:
            try:
                spec = job_spec.build_spec(snap)
            except SpecError as e:  # what the server would refuse, said before anything renders
                problems = [f"{field}: {message}" for field, message in e.errors]
        if problems:
            for problem in problems:
                self.report({"ERROR"}, problem)
            return {"CANCELLED"}

        out_dir = paths.new_job_dir(scene.marionette)
        runtime.error, runtime.frames_received, runtime.progress = "", 0, 0.0
        runtime.camera_match = ""
        runtime.job_dir, runtime.status, runtime.running = str(out_dir), "Checking the job with the server", True
        self._snap = snap
        # The camera path is captured with the guides and added to the spec before it is submitted.
        _active = Generation(_client(context), spec, out_dir)
        preflight = _with_server(server.server_starter(context), _active)

        if bpy.app.background:
            # The job streams in a worker while this thread applies its messages as they come, so a headless
            # caller sees progress live and its signal handlers (Ctrl-C) run at once.
            preflight()
            final = None
            while final is None:
                messages = _active.drain()
                planned = any(kind == "planned" for kind, _ in messages)
                if planned and not self._capture_and_stream(context):
                    return {"CANCELLED"}
                final = apply_messages(context, _active, messages)
                if final is None and not messages:
                    time.sleep(0.05)
            return self._finish(final)
        _active.start(preflight)
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _capture_and_stream(self, context) -> bool:
        """Capture the guides (main thread), then send the job from a worker. False when the capture failed."""
        runtime = context.window_manager.marionette
        runtime.status = "Capturing guides"
        try:
            guides, camera_path = capture(context.scene, self._snap, _active.out_dir / "guides")
            spec = job_spec.with_guides(_active.spec, camera_path, guides)
        except Exception as e:  # noqa: BLE001 - any render failure is reported; the scene is already restored
            runtime.running, runtime.status, runtime.error = False, "Capture failed", str(e)
            _active.finished.set()
            self.report({"ERROR"}, f"Capturing guides failed: {e}")
            return False
        runtime.status = "Sending the job"
        _active.start(_active.stream, spec, guides)
        return True

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        messages = _active.drain()
        if any(kind == "planned" for kind, _ in messages) and not self._capture_and_stream(context):
            context.window_manager.event_timer_remove(self._timer)
            return {"CANCELLED"}
        final = apply_messages(context, _active, messages)
        for area in context.screen.areas if context.screen else ():
            if area.type in {"VIEW_3D", "NODE_EDITOR", "SEQUENCE_EDITOR", "IMAGE_EDITOR"}:
                area.tag_redraw()
        runtime = context.window_manager.marionette
        context.workspace.status_text_set(f"Marionette: {runtime.status}" if final is None else None)
        if final is None:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(final)

    def _finish(self, final):
        runtime = bpy.context.window_manager.marionette
        if final == "error":
            self.report({"ERROR"}, f"Marionette: {runtime.error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Marionette: {runtime.status}")
        return {"FINISHED"} if final == "done" else {"CANCELLED"}


def cancel_active() -> bool:
    """Ask the server to stop the running generation (safe from a signal handler); False when none runs."""
    if _active is None or _active.finished.is_set():
        return False
    _active.cancel()
    return True


class MARIONETTE_OT_cancel(bpy.types.Operator):
    bl_idname = "marionette.cancel"
    bl_label = "Cancel"
    bl_description = "Stop the running generation; frames already received stay on disk"

    def execute(self, context):
        if not cancel_active():
            self.report({"WARNING"}, "No generation is running")
            return {"CANCELLED"}
        context.window_manager.marionette.status = "Cancelling"
        return {"FINISHED"}


CLASSES = (MARIONETTE_OT_generate, MARIONETTE_OT_cancel)
