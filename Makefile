# The two commands a newcomer needs: `make demo` and `make test`. Each creates or refreshes .venv by itself.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
VENV5 := .venv-blender5
PY5 := $(VENV5)/bin/python
STAMP5 := $(VENV5)/.installed-$(shell cksum tests/blender5-requirements.txt | cut -d' ' -f1)
BLENDER_TESTS := tests/test_capture.py tests/test_import.py tests/test_extension.py tests/test_boundaries.py \
	tests/test_rigs.py tests/test_real_rigs.py tests/test_batch.py

.PHONY: venv test demo bench clean

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

# Everything on Blender 4.5 LTS with the server stack, then the Blender-side tests again on Blender 5.0.
test: $(STAMP) $(STAMP5)
	$(PY) -m pytest $(PYTEST_ARGS)
	MARIONETTE_SERVER_PYTHON=$(CURDIR)/$(PY) $(PY5) -m pytest $(PYTEST_ARGS) $(BLENDER_TESTS)

# The demo scene through the extension, the server and generation into out/demo. TINY=1: offline tiny models.
demo: $(STAMP)
	$(PY) -m cli.demo --out out/demo $(if $(TINY),--tiny,)

bench: $(STAMP)
	$(PY) bench/bench_server.py
	$(PY) bench/bench_capture.py

clean:
	rm -rf out .pytest_cache
