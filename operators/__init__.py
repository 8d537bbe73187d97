"""One module per user action. Operator ids are a contract for the headless CLI and the tests."""

import bpy

from . import capture, generate, import_result, install, models, server

CLASSES = (capture.CLASSES + generate.CLASSES + server.CLASSES + import_result.CLASSES + install.CLASSES +
           models.CLASSES)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
