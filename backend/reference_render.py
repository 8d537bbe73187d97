"""An image reference rendered from the scene: the character alone on a neutral background, from a chosen frame and
camera, with the scene's own engine. Lights stay (they light the character); every other object is hidden, the
world is a neutral grey for the render, and the background pixels are exactly `NEUTRAL` (the render is made over a
transparent film and laid over the grey here, so no view transform tints it). The scene is left as it was."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np

from .beauty import iter_renders
from .png import png_bytes, read_png, write_png
from .scene_state import preserved
from .subject import alone

NEUTRAL = (128, 128, 128)  # the background, 8-bit sRGB
_WORLD_GREY = 0.5  # the neutral world's linear colour: even, uncoloured light


@contextmanager
def neutral_world(scene):
    """A temporary grey world for the block; the scene's own world (untouched) comes back, the grey one is removed."""
    own = scene.world
    world = bpy.data.worlds.new("Marionette neutral world")
    world.color = (_WORLD_GREY,) * 3
    if world.node_tree is not None:  # Blender 5.0 worlds always use nodes
        for node in world.node_tree.nodes:
            if node.type == "BACKGROUND":
                node.inputs["Color"].default_value = (_WORLD_GREY,) * 3 + (1.0,)
                node.inputs["Strength"].default_value = 1.0
    try:
        scene.world = world
        yield world
    finally:
        scene.world = own
        bpy.data.worlds.remove(world)


def render_reference(scene, objects, frame: int, camera, path: Path) -> Path:
    """Render the reference into `path` (one render); the scene is back as it was when this returns. `camera`
    None: the scene camera."""
    path = Path(path)
    written: list = []
    with preserved(scene), alone(scene, objects, keep_types={"LIGHT"}), neutral_world(scene):
        if camera is not None:
            scene.camera = camera
        scene.render.film_transparent = True
        for _ in iter_renders(scene, [frame], path.parent, written, f"{path.stem}_raw", rgba=True):
            pass
    raw = Path(written[0])
    rgba = read_png(raw).astype(np.float32)
    raw.unlink()
    alpha = rgba[..., 3:4] / 255.0
    rgb = rgba[..., :3] * alpha + np.array(NEUTRAL, np.float32) * (1.0 - alpha)
    write_png(path, np.round(rgb).astype(np.uint8))
    return path


def image_file_png(path) -> bytes:
    """An image file as PNG bytes: a PNG as it is, any other format Blender reads (JPEG, WebP, EXR ...) converted
    to 8-bit sRGB through Blender's image loader. ValueError names a file Blender cannot read."""
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as e:
        raise ValueError(f"cannot read the reference image {path}: {e}") from None
    try:
        width, height = image.size
        if not width or not height:
            raise ValueError(f"cannot read the reference image {path}: Blender found no pixels in it")
        pixels = np.empty(width * height * image.channels, np.float32)
        image.pixels.foreach_get(pixels)
        pixels = np.clip(pixels.reshape(height, width, image.channels)[::-1], 0.0, 1.0)
        if image.is_float:  # linear data (EXR, HDR): to sRGB
            pixels = np.where(pixels <= 0.0031308, pixels * 12.92, 1.055 * pixels ** (1 / 2.4) - 0.055)
    finally:
        bpy.data.images.remove(image)
    rgb = pixels[..., :3] if pixels.shape[2] >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    return png_bytes(np.round(rgb * 255).astype(np.uint8))
