# The two commands a newcomer needs: `make demo` and `make test`. Each creates or refreshes .venv by itself.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
VENV5 := .venv-blender5
PY5 := $(VENV5)/bin/python
STAMP5 := $(VENV5)/.installed-$(shell cksum tests/blender5-requirements.txt | cut -d' ' -f1)

.PHONY: venv test test-real-rigs demo bench clean extension

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

$(STAMP5): tests/blender5-requirements.txt
	test -x $(PY5) || $(PYTHON) -m venv $(VENV5)
	$(PY5) -m pip install --quiet -r tests/blender5-requirements.txt
	rm -f $(VENV5)/.installed-*
	touch $(STAMP5)

venv: $(STAMP)

# Lint, then everything on Blender 4.5 LTS with the server stack, then every test marked `blender` again on
# Blender 5.0 (selected by the marker, no list here).
test: $(STAMP) $(STAMP5)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -m "not real_assets" $(PYTEST_ARGS)
	MARIONETTE_SERVER_PYTHON=$(CURDIR)/$(PY) $(PY5) -m pytest -m "blender and not real_assets" $(PYTEST_ARGS)

# The public rig files of tests/assets/rigs (fetched, not committed): fails when one is missing.
test-real-rigs: $(STAMP)
	$(PY) -m pytest -m real_assets tests/test_real_rigs.py

# The demo scene through the extension, the server and generation into out/demo. TINY=1: offline tiny models.
demo: $(STAMP)
	$(PY) -m cli.demo --out out/demo $(if $(TINY),--tiny,)

# dist/marionette-<version>.zip with Blender's own extension tool (the one bpy ships); install it from Blender's
# Preferences > Get Extensions > Install from Disk.
extension: $(STAMP)
	mkdir -p dist
	$(PY) $(VENV)/lib/python3.11/site-packages/bpy/4.5/scripts/addons_core/bl_pkg/cli/blender_ext.py build \
		--source-dir . --output-dir dist

bench: $(STAMP)
	$(PY) bench/bench_server.py
	$(PY) bench/bench_capture.py

clean:
	rm -rf out dist .pytest_cache
