"""What a running job shows in Blender as its messages arrive (main thread): the frames, imported where the panel
says, and the latest step preview."""

from ..backend import compositing
from ..backend.generation import Generation
from .images import named_image

PREVIEW_IMAGE = "Marionette Preview"


def targets(settings) -> set[str]:
    return {
        name
        for name, on in (
            ("COMPOSITOR", settings.import_compositor),
            ("SEQUENCER", settings.import_sequencer),
            ("CAMERA_BACKGROUND", settings.import_camera_background),
        )
        if on
    }


def _import(context, generation: Generation, count: int):
    """Show the frames received so far; called again as more arrive, it updates rather than adds."""
    settings = context.scene.marionette
    chosen = targets(settings)
    if chosen:  # none chosen (e.g. the batch): the frames stay files in the job folder
        compositing.import_result(
            context.scene,
            generation.out_dir,
            count,
            generation.spec.frame_start,
            chosen,
            settings.over_render,
            replace_render=settings.replace_render,
        )


def show_preview(path):
    """The latest step preview as an image datablock the panel shows (and any Image Editor can)."""
    if path.exists():
        named_image(PREVIEW_IMAGE, path).preview_ensure()


def import_new_frames(context, generation: Generation):
    """One import per tick for all the frames that arrived in it. Only an unbroken run from the first frame is
    shown (frame_0001 is the first scene frame): a frame that arrives early waits for the ones before it."""
    shown = generation.shown
    while shown in generation.received:
        shown += 1
    if shown > generation.shown:
        _import(context, generation, shown)
        generation.shown = shown
