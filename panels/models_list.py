"""The Models panel's list of one kind: a UIList over the window manager's model rows, so that Blender draws only
the rows scrolled into view, whatever the count; which rows a kind shows (the panel's filter text, other families
on request) is worked out once per change of the rows or the filter, not per redraw."""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy

from ..backend.protocol import MODEL_FAMILIES
from ..operators import models as model_ops

USABLE = ("", "sd15")  # the families Marionette runs ("": the server could not tell)


@dataclass
class Kind:
    """One kind's counts and the rows it shows."""

    total: int = 0  # models Marionette can use
    others: int = 0  # models of another family (SDXL, Flux, ...)
    missing: int = 0  # usable models whose files are not here
    shown: list[int] = field(default_factory=list)  # row indices the filter and the family switch let through
    _flags: list[int] | None = None

    def flags(self, rows: int, bit: int) -> list[int]:
        if self._flags is None or len(self._flags) != rows:
            self._flags = [0] * rows
            for i in self.shown:
                self._flags[i] = bit
        return self._flags


_summary: dict = {}


def summary(view) -> dict[str, Kind]:
    """{kind: Kind} of the rows as the panel's filter and family switch show them."""
    key = (view.source, len(view.rows), view.filter.casefold(), view.other_families)
    if _summary.get("key") != key:
        text, kinds = key[2], {}
        for i, row in enumerate(view.rows):
            kind = kinds.setdefault(row.kind, Kind())
            usable = row.family in USABLE
            kind.total += usable
            kind.others += not usable
            kind.missing += usable and not row.available
            if (usable or view.other_families) and text in row.name.casefold():
                kind.shown.append(i)
        _summary.clear()
        _summary.update(key=key, kinds=kinds)
    return _summary["kinds"]


def _size(size) -> str:
    return f"{size / 1e9:.1f} GB" if size and size >= 1e8 else f"{size / 1e6:.0f} MB" if size else "size unknown"


def draw_row(layout, item):
    """One model: here (a tick), missing (its size and Download), downloading (a progress bar), or of another
    family (greyed, with the family)."""
    row = layout.row(align=True)
    name, kind = item.name, item.kind
    if item.family not in USABLE:
        row.active = False
        named = MODEL_FAMILIES.get(item.family, item.family)
        row.label(text=f"{name}: {named} — not usable with SD1.5", icon="CANCEL")
        return
    report = model_ops.downloads.get((kind, name))
    if report and report.get("state") == "running" and report.get("total"):
        done, total = report["done"], report["total"]
        row.progress(factor=done / total, text=f"{name}: {done / 1e6:.0f} / {total / 1e6:.0f} MB")
        return
    if item.available:
        row.label(text=name, icon="CHECKMARK")
        return
    row.label(text=f"{name} (missing, {_size(item.size)})", icon="ERROR")
    if item.downloadable:
        op = row.operator("marionette.model_download", text="Download", icon="IMPORT")
        op.kind, op.name = kind, name


class MARIONETTE_UL_models(bpy.types.UIList):
    """The models of one kind (the list's id): Blender calls draw_item for the visible rows only."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        draw_row(layout, item)

    def draw_filter(self, context, layout):
        pass  # the panel's Filter field filters every kind at once

    def filter_items(self, context, data, propname):
        kind = summary(data).get(self.list_id) or Kind()
        return kind.flags(len(data.rows), self.bitflag_filter_item), []


CLASSES = (MARIONETTE_UL_models,)
