"""marionette.generate and marionette.cancel.

One `Run` holds a generation's state (the operator owns it; the module keeps a reference so Cancel, the panel and
the load_pre handler reach it). A timer calls `Run.tick`: the worker's preflight answer, then ONE guide frame per
tick on the main thread (so Blender stays responsive and Esc works between frames), then the worker streams the
job while ticks apply its messages. In background mode (`blender -b`, the bpy module) there is no event loop, so
the operator calls `tick` itself until the run ends.
"""

import time

import bpy
from bpy.app.handlers import persistent

from .. import preferences
from ..backend import catalog, estimate, job_spec, server_control
from ..backend.generation import Generation, Message
from ..backend.launcher import LaunchError
from ..server.protocol import SpecError
from . import paths, server
from .capture import capture_steps
from .job_display import import_new_frames, show_preview

_active = None  # the Run of this Blender session, while it runs and after (the panel shows how it ended)
# Headless callers (the batch command) may set this to follow a job: called with (kind, data, runtime) for each
# message instead of the plain status print.
progress_listener = None


def _with_server(starter, generation: Generation):
    """The preflight phase, after starting (or adopting) the local server with its progress as messages."""

    def run():
        try:
            generation.client = starter(lambda text: generation.messages.put(Message("server", {"message": text})))
        except LaunchError as e:
            generation.messages.put(Message("error", {"message": str(e), "status": -1}))
            generation.finished.set()
            return
        generation.preflight()

    return run


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
            runtime.progress = 0.9 * data["i"] / (data.get("n") or steps)  # FreeInit repeats the steps
            show_preview(generation.out_dir / "preview.png")
        elif kind == "frame":
            generation.received.add(data["index"])
            runtime.frames_received = len(generation.received)  # a resumed stream may send a frame again
            runtime.status = f"Frame {runtime.frames_received}/{frames}"
            runtime.progress = 0.9 + 0.1 * runtime.frames_received / frames
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
                    runtime.error += (
                        f". Start it in Marionette > Server, or check the Server URL in the "
                        f"preferences; server log: {server_control.log_path(paths.server_data_dir())}"
                    )
                runtime.status = f"Failed; {received} frames kept"
        if progress_listener is not None:
            progress_listener(kind, data, runtime)
        elif bpy.app.background and kind in ("step", "frame", "done", "error", "cancelled"):
            print(f"Marionette: {runtime.status}", flush=True)  # headless: the terminal is the status bar
    if any(kind == "frame" for kind, _ in messages):
        import_new_frames(context, generation)
    return final


def running() -> bool:
    """A job of this Blender session is running (capturing, or waiting for the server)."""
    return _active is not None and not _active.done


def refusals(context) -> list[str]:
    """Why Generate would refuse the current settings, in the artist's words (also drawn by the panel)."""
    scene = context.scene
    snap = job_spec.snapshot(scene.marionette, scene)
    problems = job_spec.problems(snap, scene.camera is not None)
    problems += estimate.estimate(snap, catalog.motion_info(snap["motion_module"]))["refusals"]
    if not problems:
        try:
            job_spec.build_spec(snap)
        except SpecError as e:  # what the server would refuse, said before anything renders
            problems = [f"{field}: {message}" for field, message in e.errors]
    return problems


class Run:
    """One generation: preflight (worker) → capture (main thread, a frame per tick) → stream (worker)."""

    def __init__(self, context, snap: dict):
        self.snap, self.scene = snap, context.scene
        self.out_dir = paths.new_job_dir(context.scene.marionette)
        client = server_control.client_for(preferences.get(context))
        self.generation = Generation(client, job_spec.build_spec(snap), self.out_dir)
        self.phase = "preflight"
        self.capture = None
        self.captured: dict = {}
        self.final: str | None = None
        self.done = False
        self.longest_tick = 0.0

    def start(self, context, threaded: bool):
        preflight = _with_server(server.server_starter(context), self.generation)
        if threaded:
            self.generation.start(preflight)
        else:
            preflight()

    def cancel(self, why: str = "Cancelled"):
        """Stop at once in the capture (the scene is put back), or ask the server to stop the job."""
        runtime = bpy.context.window_manager.marionette
        if self.phase in ("preflight", "capture"):
            self._close_capture()
            self.generation.cancel_requested.set()
            self._end("cancelled", f"{why} before the job was sent")
        else:
            self.generation.cancel()
            runtime.status = "Cancelling"

    def tick(self, context, threaded: bool = True) -> bool:
        """Advance by one step; True once the run has ended. Never blocks longer than one guide render."""
        started = time.perf_counter()
        try:
            if self.done:
                return True
            if self.phase == "capture":
                self._capture_step(context, threaded)
            else:
                messages = self.generation.drain()
                planned = [m for m in messages if m.kind == "planned"]
                rest = [m for m in messages if m.kind != "planned"]
                if planned and self.phase == "preflight" and not self.generation.cancel_requested.is_set():
                    apply_messages(context, self.generation, planned)
                    self.phase = "capture"
                    self.capture = capture_steps(self.scene, self.snap, self.out_dir / "guides", self.captured)
                final = apply_messages(context, self.generation, rest)
                if final is not None:
                    self._end(final)
            return self.done
        finally:
            self.longest_tick = max(self.longest_tick, time.perf_counter() - started)

    def _capture_step(self, context, threaded):
        runtime = context.window_manager.marionette
        try:
            what, done, total, frame = next(self.capture)
        except StopIteration:
            self.capture = None
            self.phase = "stream"
            runtime.status = "Sending the job"
            files, path = self.captured["files"], self.captured["camera_path"]
            try:
                spec = job_spec.with_guides(self.generation.spec, path, files)
            except SpecError as e:
                runtime.error = f"The captured guides do not fit the job: {e}"
                self._end("error", "Capture failed")
                return
            if threaded:
                self.generation.start(self.generation.stream, spec, files)
            else:
                self.generation.stream(spec, files)
            return
        except Exception as e:  # noqa: BLE001 - any render failure is reported; the scene is already restored
            self.capture = None
            runtime.error = f"Capturing guides failed: {e}"
            self._end("error", "Capture failed")
            return
        runtime.capture_frame = frame
        runtime.progress = 0.2 * done / total
        runtime.status = {
            "guides": f"Rendering guides: frame {frame} ({done}/{total})",
            "keyframe": f"Rendering keyframe {frame}",
            "init": f"Rendering the start frames: frame {frame} ({done}/{total})",
            "reference": f"Image references ({done}/{total})",
        }.get(what, "Camera path")

    def _close_capture(self):
        if self.capture is not None:
            self.capture.close()  # runs the generator's finally blocks: the scene's settings go back
            self.capture = None

    def _end(self, final: str, status: str | None = None):
        runtime = bpy.context.window_manager.marionette
        self.final, self.done, runtime.running = final, True, False
        if status:
            runtime.status = status
        if final != "done" and not any(self.out_dir.glob("frame_*.png")) and self.phase != "stream":
            paths.remove_if_empty(self.out_dir)
        if self.phase != "stream":
            self.generation.finished.set()

    @property
    def spec(self) -> dict:
        return self.generation.spec


class MARIONETTE_OT_generate(bpy.types.Operator):
    bl_idname = "marionette.generate"
    bl_label = "Generate"
    bl_description = "Capture the guides and generate the animation on the Marionette server"

    wait: bpy.props.BoolProperty(
        default=True,
        options={"HIDDEN", "SKIP_SAVE"},
        description="Background mode only: run to the end before returning (off: the "
        "caller drives Run.tick, as a timer would)",
    )
    _timer = None

    def execute(self, context):
        global _active
        scene, runtime = context.scene, context.window_manager.marionette
        if running():
            self.report({"ERROR"}, "A generation is already running: cancel it or wait")
            return {"CANCELLED"}
        problems = refusals(context)
        if problems:
            for problem in problems:
                self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        snap = job_spec.snapshot(scene.marionette, scene)
        runtime.error, runtime.frames_received, runtime.progress, runtime.capture_frame = "", 0, 0.0, 0
        runtime.camera_match = ""
        runtime.status, runtime.running = "Checking the job with the server", True
        self.run = _active = Run(context, snap)
        runtime.job_dir = str(self.run.out_dir)

        if bpy.app.background:
            # No event loop: this thread ticks (the job streams in a worker, so a headless caller sees progress
            # live and its signal handlers run at once), or with wait=False the caller ticks.
            self.run.start(context, threaded=True)
            if not self.wait:
                return {"FINISHED"}
            while not self.run.tick(context):
                if self.run.phase != "capture":
                    time.sleep(0.02)
            return self._finish(self.run.final)
        self.run.start(context, threaded=True)
        self._timer = context.window_manager.event_timer_add(0.02, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if self.run is not _active:  # a new file was loaded (load_pre ended the run)
            return self._stop(context, {"CANCELLED"})
        if event.type == "ESC" and event.value == "PRESS" and self.run.phase in ("preflight", "capture"):
            self.run.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        ended = self.run.tick(context)
        for area in context.screen.areas if context.screen else ():
            if area.type in {"VIEW_3D", "NODE_EDITOR", "SEQUENCE_EDITOR", "IMAGE_EDITOR"}:
                area.tag_redraw()
        runtime = context.window_manager.marionette
        context.workspace.status_text_set(None if ended else f"Marionette: {runtime.status} (Esc to cancel)")
        if not ended:
            return {"PASS_THROUGH"}
        return self._stop(context, self._finish(self.run.final))

    def cancel(self, context):
        self._stop(context, None)

    def _stop(self, context, result):
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        return result

    def _finish(self, final):
        runtime = bpy.context.window_manager.marionette
        if final == "error":
            self.report({"ERROR"}, f"Marionette: {runtime.error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Marionette: {runtime.status}")
        return {"FINISHED"} if final == "done" else {"CANCELLED"}


def cancel_active() -> bool:
    """Ask the server to stop the running generation (safe from a signal handler: no bpy in the stream phase);
    False when none runs."""
    if not running():
        return False
    if _active.phase == "stream":
        _active.generation.cancel()
    else:
        _active.cancel()
    return True


class MARIONETTE_OT_cancel(bpy.types.Operator):
    bl_idname = "marionette.cancel"
    bl_label = "Cancel"
    bl_description = "Stop the running generation; frames already received stay on disk"

    def execute(self, context):
        if not running():
            self.report({"WARNING"}, "No generation is running")
            return {"CANCELLED"}
        _active.cancel()
        return {"FINISHED"}


@persistent
def cancel_on_load(*_args):
    """A file is being opened or created: the running job belongs to the scene that goes away, so it is cancelled
    (frames already received stay in its folder) and the new file's panel starts idle."""
    if running():
        _active.cancel("Cancelled: another file was opened")


CLASSES = (MARIONETTE_OT_generate, MARIONETTE_OT_cancel)


def register():
    bpy.app.handlers.load_pre.append(cancel_on_load)


def unregister():
    if cancel_on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(cancel_on_load)
