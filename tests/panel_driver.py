"""Driving the installed extension's N-panel headless, as tests/test_panel*.py do: its modules, the runtime state,
a run ticked as Blender's timer would, and a recording layout through which every sub-panel's draw code runs and
that checks each property and operator it names."""

from __future__ import annotations

import sys
import time

import bpy
from test_extension import PACKAGE


def ext(module):
    return sys.modules[f"{PACKAGE}.{module}"]


def runtime():
    return bpy.context.window_manager.marionette


def tick_until(run, done, limit=300.0):
    """Drive the run as Blender's timer would; returns the tick durations."""
    ticks, deadline = [], time.monotonic() + limit
    while not done() and time.monotonic() < deadline:
        t = time.perf_counter()
        run.tick(bpy.context)
        ticks.append(time.perf_counter() - t)
        time.sleep(0.005)
    assert done(), "the run did not get there in time"
    return ticks


def start_run():
    assert bpy.ops.marionette.generate(wait=False) == {"FINISHED"}
    return ext("operators.generate")._active


# --- a recording layout: the draw functions run as in Blender, every name they use is checked ------------------


class Recorder:
    def __init__(self, log):
        self.log = log
        self.enabled = self.active = self.alert = True
        self.scale_y = 1.0

    def _child(self, *args, **kwargs):
        return Recorder(self.log)

    row = column = box = split = column_flow = grid_flow = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {name!r}"
        self.log.append(("prop", name))

    def prop_search(self, data, name, search_data, search_name, **kwargs):
        assert name in data.bl_rna.properties and search_name in search_data.bl_rna.properties
        self.log.append(("prop_search", name))

    def operator(self, idname, **kwargs):
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name) and getattr(getattr(bpy.ops, category), name).idname(), idname
        self.log.append(("operator", idname))
        return OperatorProps(getattr(getattr(bpy.ops, category), name).get_rna_type())

    def label(self, text="", **kwargs):
        assert isinstance(text, str)
        self.log.append(("label", text))

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, **kwargs):
        assert hasattr(bpy.types, list_type), list_type
        assert prop in data.bl_rna.properties and active_prop in active_data.bl_rna.properties
        ui_list = getattr(bpy.types, list_type)
        for index, item in enumerate(getattr(data, prop)):
            ui_list.draw_item(None, bpy.context, Recorder(self.log), data, item, 0, active_data, active_prop, index)
        self.log.append(("list", list_type))

    def progress(self, factor=0.0, text="", **kwargs):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def panel(self, idname, default_closed=False):  # a layout panel, in its default state
        return Recorder(self.log), None if default_closed else Recorder(self.log)

    def template_icon(self, icon_value=0, scale=1.0):
        self.log.append(("icon", icon_value))

    def separator(self, **kwargs):
        pass


class OperatorProps:
    def __init__(self, rna):
        self.__dict__["_names"] = set(rna.properties.keys())

    def __setattr__(self, name, value):
        assert name in self._names, f"operator has no property {name!r}"


def draw_all():
    """Draw every Marionette panel whose poll passes; returns the recorded calls."""
    log = []
    for cls in ext("panels").CLASSES:
        if hasattr(cls, "poll") and not cls.poll(bpy.context):
            continue
        panel = type("P", (), {"layout": Recorder(log)})()
        cls.draw(panel, bpy.context)
    return log


def labels(log):
    return [text for kind, text in log if kind == "label"]


def shown(log) -> str:
    """All the panel's text as one string (long messages wrap over several labels)."""
    return " ".join(labels(log))
