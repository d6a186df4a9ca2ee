# Two commands do all the set-up on a fresh machine (Python 3.10+ and, for the
# browser tests, Debian's chromium; .ci/run installs it):
#   make demo   - install, train a demo with the callback, start TensorBoard on it
#   make test   - install, run every test
# Variables: DEMO=imdb|transformer|lstm_attention|gru_seq2seq|induction|vit|all, LOGDIR, PORT,
# PRESET (demo size), EPOCHS.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO ?= imdb
LOGDIR ?= logs
PORT ?= 6006
PRESET ?= default
DEMOS := imdb transformer lstm_attention gru_seq2seq induction vit
# keras-hub for the model-zoo tests (tests/test_zoo_*.py), pinned. Installed
# with --no-deps: its tensorflow-text requirement would install the full
# `tensorflow` beside `tensorflow-cpu`; the imports it needs to build models
# from config are in setup.py's test extra. It needs Python >= 3.11; on 3.10
# the zoo tests are skipped.
KERAS_HUB := keras-hub==0.32.0
# PyTorch for the torch backend's tests, pinned: 2.13.0 is a CPU build (754 MB
# installed, 32 s from the local wheel cache); an unpinned `torch` from PyPI
# is a CUDA build of several GB.
TORCH := torch==2.13.0
# Tests that run again with KERAS_BACKEND=jax and =torch (tests/test_backends.py
# says why these): capture on every backend, Keras's attention layers in every
# model style, every mask form, shared layers, faults, the keras_hub zoo, LLM habits,
# long probes stored reduced, value-weighted attention.
BACKEND_TESTS := tests/test_backends.py tests/test_callback_capture.py tests/test_capture_any_model.py tests/test_probe_habits.py \
  tests/test_zoo_keras_hub.py tests/test_llm_finetuning.py tests/test_long_probes.py tests/test_value_weighted.py tests/test_relevance.py

.PHONY: install test demo demo-train bench clean

# Every stage prints one line starting with "==>"; pip prints only errors.
PIP := $(PY) -m pip --disable-pip-version-check -q

# Re-installs when setup.py changes; the package is installed editable.
$(VENV)/.installed: setup.py Makefile
	@echo "==> Installing tb-attention with TensorFlow (CPU), JAX, PyTorch (CPU) and the test tools into $(VENV) (first time: a few minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --upgrade pip
	@# setuptools' notice on editable installs ("be careful with folders ...
	@# named like your package") asks nothing of a user: not shown.
	@PYTHONWARNINGS="ignore:Editable installation" $(PIP) install -e ".[cpu,test,jax]" "$(TORCH)"
	@if $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  $(PIP) install --no-deps "$(KERAS_HUB)"; \
	else echo "    Python < 3.11: keras-hub not installed, the zoo tests will be skipped"; fi
	@touch $@

install: $(VENV)/.installed

test: install
	@echo "==> Running the Python tests (pytest tests; several minutes)"
	@# Keras's own numpy-2 DeprecationWarning (keras/src/backend/tensorflow/
	@# core.py, "__array__ implementation doesn't accept a copy keyword") is
	@# nothing this project or its user can change: left out of the summary.
	@$(PY) -m pytest tests -W "ignore:__array__ implementation:DeprecationWarning"
	@echo "==> Running the backend tests again on JAX (KERAS_BACKEND=jax, two host devices)"
	@KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
	  $(PY) -m pytest $(BACKEND_TESTS) -W "ignore:__array__ implementation:DeprecationWarning"
	@echo "==> Running the backend tests again on PyTorch (KERAS_BACKEND=torch)"
	@KERAS_BACKEND=torch $(PY) -m pytest $(BACKEND_TESTS) -W "ignore:__array__ implementation:DeprecationWarning"
	@if command -v node >/dev/null; then echo "==> Running the tab's unit tests (node --test)"; node --test frontend/tests/; \
	else echo "==> node not found: the tab's unit tests are skipped (apt-get install nodejs)"; fi

demo-train: install
	@for d in $(if $(filter all,$(DEMO)),$(DEMOS),$(DEMO)); do \
	  echo "==> Training the $$d demo ($(PRESET) preset) into $(LOGDIR)/$$d"; \
	  $(PY) -m demo_models.$$d --logdir $(LOGDIR)/$$d --preset $(PRESET) $(if $(EPOCHS),--epochs $(EPOCHS)) || exit 1; \
	done

demo: demo-train
	@echo "==> Starting TensorBoard on $(LOGDIR)"
	@$(PY) -m demo_models.serve --logdir $(LOGDIR) --port $(PORT)

bench: install
	@echo "==> Installing the benchmark extras"
	@$(PIP) install -e ".[cpu,test,bench]"
	@echo "==> Running the benchmarks (writes BENCHMARKS.md)"
	BENCH_DEMO_LOGDIR=$(LOGDIR) $(PY) -m bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
