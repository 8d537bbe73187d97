"""Marionette: direct AnimateDiff with your 3D scene. register() / unregister() only."""

from . import batch, operators, panels, preferences, properties

_MODULES = (preferences, properties, operators, panels, batch)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    from .backend import server_control

    server_control.stop()
    for module in reversed(_MODULES):
        module.unregister()
