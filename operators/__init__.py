"""One module per user action. Operator ids are a contract for the headless CLI and the tests."""

import bpy

from . import (
    camera_match,
    capture,
    catalog,
    generate,
    import_result,
    install,
    lists,
    logs,
    model_roots,
    models,
    server,
)

CLASSES = (
    capture.CLASSES
    + generate.CLASSES
    + server.CLASSES
    + import_result.CLASSES
    + install.CLASSES
    + logs.CLASSES
    + models.CLASSES
    + model_roots.CLASSES
    + lists.CLASSES
    + catalog.CLASSES
    + camera_match.CLASSES
)

_register, _unregister = bpy.utils.register_classes_factory(CLASSES)


def register():
    _register()
    generate.register()
    try:
        catalog.load_cached()
    except (OSError, ValueError):
        pass  # no extension user folder (legacy install): the pickers fill on the first refresh
    camera_match.register()


def unregister():
    models.unregister()
    camera_match.unregister()
    generate.unregister()
    _unregister()
