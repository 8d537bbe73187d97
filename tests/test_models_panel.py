"""The Models panel at an A1111 install's scale, through the installed extension and real servers: 1,000+ models
(tests/support/big_install.py) in folding sections with their counts, a filter, other families on request, a
bounded number of rows drawn; Download, its progress and its errors; the pickers' order and cost."""

from __future__ import annotations

import os
import time
from itertools import compress, islice
from types import SimpleNamespace

import bpy
import pytest
from conftest import TOKEN
from panel_driver import Recorder, ext
from test_extension import point_at

from backend.client import Client
from server.loaders import DEFAULT_CONFIG
from tests.support import big_install, tiny_families

pytestmark = pytest.mark.blender

FLAG = 1 << 30  # UIList.bitflag_filter_item


class Layout(Recorder):
    """Lays out what the Models panel uses as Blender does: a layout panel is open or folded by its state (its
    default until `folds` says otherwise), a UIList draws the first `rows` of the rows its filter_items lets
    through (`scroll`: all of them, as if the artist scrolled through). Labels drawn greyed are recorded as
    ("greyed", text) too."""

    def __init__(self, log, folds=None, scroll=False):
        super().__init__(log)
        self.folds, self.scroll = folds if folds is not None else {}, scroll

    def _child(self, *args, **kwargs):
        child = Layout(self.log, self.folds, self.scroll)
        child.active = self.active
        return child

    row = column = box = split = column_flow = grid_flow = _child

    def label(self, text="", **kwargs):
        super().label(text, **kwargs)
        if not self.active:
            self.log.append(("greyed", text))

    def panel(self, idname, default_closed=False):
        opened = self.folds.get(idname, not default_closed)
        self.log.append(("panel", idname, opened))
        return self._child(), self._child() if opened else None

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, rows=5, **kwargs):
        ui_list = getattr(bpy.types, list_type)
        self_ = SimpleNamespace(list_id=list_id, bitflag_filter_item=FLAG)
        flags, order = ui_list.filter_items(self_, bpy.context, data, prop)
        items = getattr(data, prop)
        assert len(flags) == len(items) and order == []
        shown = [i for i, f in enumerate(flags) if f & FLAG]
        for index in shown if self.scroll else shown[:rows]:
            ui_list.draw_item(self_, bpy.context, self._child(), data, items[index], 0, active_data, active_prop, index)
        self.log.append(("list", list_id, len(shown)))


class Bare:
    """The cheapest layout that still does what Blender does per draw (a UIList's filter_items, draw_item for the
    rows in view): timing a draw through it times the panel's own Python."""

    active = enabled = alert = True

    def _self(self, *args, **kwargs):
        return self

    row = column = box = split = label = prop = operator = progress = separator = _self

    def panel(self, idname, default_closed=False):
        return self, self

    def template_list(self, list_type, list_id, data, prop, active_data, active_prop, rows=5, **kwargs):
        ui_list, self_ = getattr(bpy.types, list_type), SimpleNamespace(list_id=list_id, bitflag_filter_item=FLAG)
        flags, _ = ui_list.filter_items(self_, bpy.context, data, prop)
        items = getattr(data, prop)
        for index in islice(compress(range(len(flags)), flags), rows):
            ui_list.draw_item(self_, bpy.context, self, data, items[index], 0, active_data, active_prop, index)


def draw_time(panel_class) -> float:
    """Median seconds of a draw of every section, open, through Bare."""
    panel, times = type("P", (), {"layout": Bare()})(), []
    for _ in range(30):
        start = time.perf_counter()
        panel_class.draw(panel, bpy.context)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def draw(folds=None, scroll=False):
    log = []
    panel = type("P", (), {"layout": Layout(log, folds, scroll)})()
    ext("panels.models").MARIONETTE_PT_models.draw(panel, bpy.context)
    return log


def texts(log, kind="label"):
    return [entry[1] for entry in log if entry[0] == kind]


def sections(log) -> dict[str, bool]:
    """{section id: open} of the kinds drawn."""
    return {entry[1]: entry[2] for entry in log if entry[0] == "panel"}


def PANEL():
    return ext("panels.models").MARIONETTE_PT_models


def view():
    return bpy.context.window_manager.marionette_models


def refresh(extension, url):
    point_at(extension, url)
    view().filter, view().other_families = "", False
    ext("operators.models").downloads.clear()
    assert bpy.ops.marionette.models_refresh() == {"FINISHED"}
    return Client(url, TOKEN, timeout=60).models()


def usable(answer, kind):
    return [m for m in answer[kind] if m["family"] in (None, "sd15")]


@pytest.fixture(scope="module")
def big_server(tiny_models, tmp_path_factory):
    """The server on the default config (hub models, not downloaded: HF_HUB_OFFLINE) and an A1111 install of
    1,000 model files."""
    from backend import launcher

    python = os.environ.get("MARIONETTE_SERVER_PYTHON")
    families = tmp_path_factory.mktemp("families")
    tiny_families.build_with(python, families, tiny_models)
    root = big_install.build(tiny_models, families, tmp_path_factory.mktemp("install"))
    data = tmp_path_factory.mktemp("served-big")
    toml = data / "models.toml"
    toml.write_text(f'[file_configs]\nbase = "{tiny_models / "sd15"}"\n' + DEFAULT_CONFIG.read_text())
    server = launcher.start(
        python,
        args=["--models", str(toml), "--model-root", str(root), "--port", "0", "--data", str(data)]
        + ["--token", TOKEN],
        log=data / "stdout.log",
        timeout=180,
        env={"HF_HUB_OFFLINE": "1"},
    )
    yield server
    server.stop()


def test_no_server_then_a_few_models_in_folded_sections_with_their_counts(extension, tiny_server):
    prefs = point_at(extension, "http://127.0.0.1:9")
    prefs.models_cache = ""
    log = draw()
    assert texts(log) == [ext("panels.models").NO_SERVER] and not sections(log)

    answer = refresh(extension, tiny_server.url)
    log = draw()
    titles = ext("properties_models").KINDS
    headers = [t for t in texts(log) if t.split(" (")[0] in titles.values()]
    expected = [f"{title} ({len(usable(answer, kind))})" for kind, title in titles.items() if answer.get(kind)]
    assert headers == expected and "Checkpoint (" in headers[0]
    assert not any(sections(log).values()), "every model is here: every section starts folded"
    assert not texts(log, "list"), "a folded section draws no row"
    log = draw(folds={"marionette_models_base": True})  # the artist opens Checkpoint
    assert [t for t in texts(log) if t not in headers] == sorted(
        (m["name"] for m in answer["base"]), key=ext("backend.catalog").natural_key
    )

    # rows older than the cached list (a file opened, the list of a previous session): filled on the next tick
    view().rows.clear()
    view().source = ""
    assert texts(draw()) == ["Reading the model list…"]
    models_ops = ext("operators.models")
    assert bpy.app.timers.is_registered(models_ops._sync_now)
    bpy.app.timers.unregister(models_ops._sync_now)
    models_ops._sync_now()  # what the timer runs
    assert [t for t in texts(draw()) if t.split(" (")[0] in titles.values()] == expected


def test_no_models_says_where_to_add_them(extension, tmp_path):
    from backend import launcher

    (tmp_path / "empty.toml").write_text("")
    server = launcher.start(
        os.environ.get("MARIONETTE_SERVER_PYTHON"),
        args=["--models", str(tmp_path / "empty.toml"), "--port", "0", "--data", str(tmp_path), "--token", TOKEN],
        log=tmp_path / "stdout.log",
        timeout=180,
    )
    try:
        answer = refresh(extension, server.url)
    finally:
        server.stop()
    assert not any(answer.values())
    assert texts(draw()) == [ext("panels.models").NO_MODELS]


def test_a_thousand_models_draw_a_bounded_number_of_rows(extension, big_server):
    answer = refresh(extension, big_server.url)
    loras = usable(answer, "lora")
    assert len(loras) >= big_install.COUNTS["lora"] and sum(map(len, answer.values())) >= 1000
    log = draw()
    assert f"LoRA ({len(loras)}, 20 of other families hidden)" in texts(log)
    bases = usable(answer, "base")
    missing = [m for m in bases if not m["available"]]
    assert missing, "the default config's hub checkpoints are not downloaded (HF_HUB_OFFLINE)"
    heading = f"Checkpoint ({len(bases)}, {len(missing)} missing, 20 of other families hidden)"
    assert heading in texts(log)
    opened = {s for s, is_open in sections(log).items() if is_open}
    assert "marionette_models_base_attention" in opened and "marionette_models_lora" not in opened
    # what needs the artist comes first in its list: the missing checkpoints, each with Download
    first = min((m["name"] for m in missing), key=ext("backend.catalog").natural_key)
    assert texts(log)[texts(log).index(heading) + 1].startswith(f"{first} (missing, ")
    assert ("operator", "marionette.model_download") in log
    rows = ext("panels.models").ROWS
    assert len(texts(log)) <= len(sections(log)) + rows * len(opened) + 2, "rows drawn are bounded, not 1,000"

    print(f"\nModels panel, {sum(map(len, answer.values()))} models: {draw_time(PANEL()) * 1000:.3f} ms a draw")


def test_the_filter_and_the_family_switch(extension, big_server):
    answer = refresh(extension, big_server.url)
    v = view()
    v.filter = "inkstyle1"  # case-insensitive: inkStyle1, inkStyle10-19, inkStyle100-199
    log = draw()
    assert [t for t in texts(log) if t.startswith("LoRA")] == ["LoRA (111 of 600, 20 of other families hidden)"]
    assert sections(log) == {"marionette_models_lora_found": True}, "only kinds with a match; found ones open"
    rows = ext("panels.models").ROWS
    assert texts(log)[1:] == ["inkStyle1"] + [f"inkStyle{i}" for i in range(10, 10 + rows - 1)]
    assert ("list", "lora", 111) in log
    log = draw(folds={"marionette_models_lora_found": False})  # the artist folds it
    assert texts(log) == ["LoRA (111 of 600, 20 of other families hidden)"] and not texts(log, "list")

    v.filter = "pony"
    assert texts(draw()) == ["No model name contains 'pony'"]
    v.other_families = True
    log = draw()
    missing = sum(not m["available"] for m in usable(answer, "base"))
    assert texts(log)[0] == f"Checkpoint (20 of {len(answer['base'])}, {missing} missing)"  # none hidden now
    assert sections(log) == {"marionette_models_base_attention": True}, "no other kind has a 'pony'"
    assert texts(log, "greyed")[:2] == [f"ponyDiffusion_v{i}: SDXL — not usable with SD1.5" for i in (1, 2)]
    v.filter = "xl"
    assert "LoRA (20 of 620)" in texts(draw())
    v.filter = "zzz-none"
    assert texts(draw()) == ["No model name contains 'zzz-none'"]


def test_download_progress_and_errors_show_in_their_section(extension, big_server):
    answer = refresh(extension, big_server.url)
    model = next(m for m in answer["motion_module"] if not m["available"] and m["downloadable"])
    downloads = ext("operators.models").downloads
    downloads[("motion_module", model["name"])] = {"state": "running", "done": 5e6, "total": 2e7}
    log = draw()
    assert f"{model['name']}: 5 / 20 MB" in texts(log, "progress")
    assert sections(log)["marionette_models_motion_module_attention"] is True

    # a real download the server cannot make (HF_HUB_OFFLINE): the section says why, under its list
    with pytest.raises(RuntimeError):
        bpy.ops.marionette.model_download(kind="motion_module", name=model["name"])
    assert downloads[("motion_module", model["name"])]["state"] == "error"
    shown = " ".join(texts(draw()))
    assert f"{model['name']}: " in shown and downloads[("motion_module", model["name"])]["error"][:20] in shown
    assert f"{model['name']} (missing, " in shown, "the row keeps its Download button to try again"


def test_pickers_sort_as_artists_do_and_search_only_filters(extension, big_server, monkeypatch):
    refresh(extension, big_server.url)
    assert bpy.ops.marionette.refresh_models() == {"FINISHED"}
    catalog, search = ext("backend.catalog"), ext("properties")._search("lora")
    mixed = ["lora10", "Lora2", "lora_a", "LORA_B", "lora1", "lora2", "a9"]
    assert sorted(mixed, key=catalog.natural_key) == ["a9", "lora1", "Lora2", "lora2", "lora10", "lora_a", "LORA_B"]
    names = search(None, bpy.context, "")
    assert names == sorted(names, key=catalog.natural_key) and len(names) >= 600
    assert names.index("inkStyle2") < names.index("inkStyle10") < names.index("inkStyle100")
    assert search(None, bpy.context, "INKSTYLE59")[:3] == ["inkStyle59", "inkStyle590", "inkStyle591"]
    assert not search(None, bpy.context, "xlstyle"), "SDXL LoRAs are no choice"
    keys = []
    monkeypatch.setattr(catalog, "natural_key", lambda name: keys.append(name) or name)
    for text in ("i", "in", "ink", "inkS", "inkSt"):
        search(None, bpy.context, text)
    assert keys == [], "no sorting on a keystroke: the names were sorted once, at the refresh"
