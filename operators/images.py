"""Image datablocks the add-on shows (step previews, pose guides), found by name and updated in place."""

from pathlib import Path

import bpy


def named_image(name: str, path: Path):
    """The image called `name`, (re)pointed at `path` and reloaded; created on first use."""
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(str(path))
        image.name = name
    elif image.filepath != str(path):
        image.filepath = str(path)  # reads the file again, as `reload` would
    else:
        image.reload()
    return image
