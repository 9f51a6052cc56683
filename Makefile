# mean-tf: `make demo` runs the TFX pipeline on the bundled data; `make test` runs the test suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

# Python 3.10 (TFX 1.16 needs 3.9 or 3.10): first python3.10 that runs, then pyenv's, then python3.9.
PYTHON_FOR_VENV := $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 python3.9 $$HOME/.pyenv/versions/3.9*/bin/python3.9; do \
	if $$p -c 'import sys; assert sys.version_info[:2] in ((3, 10), (3, 9))' >/dev/null 2>&1; then echo $$p; break; fi; done)

.PHONY: demo test venv lock benchmark report perf clean

$(VENV)/.installed: requirements.lock setup.py
	@if [ -z "$(PYTHON_FOR_VENV)" ]; then \
		echo "mean-tf needs Python 3.10 (or 3.9) for TFX 1.16; none found. Install one, e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv', then rerun."; exit 1; fi
	@test -x $(PY) || $(PYTHON_FOR_VENV) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==26.3
	PIP_CONSTRAINT= $(PY) -m pip install -q -r requirements.lock
	PIP_CONSTRAINT= $(PY) -m pip install -q --no-deps -e .
	@touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/mean-tf demo

test: venv
	$(PY) -m pytest tests mean_tf pipeline -q -p no:cacheprovider -n 2 --dist loadfile --durations=15

# `benchmark` and `perf` regenerate the tracked reports in docs/ (--write-docs; without it they write to out/).
benchmark: venv
	$(VENV)/bin/mean-tf benchmark run --write-docs
	$(VENV)/bin/mean-tf benchmark report --write-docs

perf: venv
	$(VENV)/bin/python -m benchmarks.perf all --write-docs

lock:
	uv pip compile requirements.in --python-version 3.10 --python-platform x86_64-manylinux_2_31 -o requirements.lock

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
