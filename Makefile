# Two commands: `make repro` (install + run the pipeline) and `make test` (install + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build these machines carry on disk (GUIDE.md section 3); pip installs it first so the
# project's lower bounds are met without downloading another build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

export DVC_NO_ANALYTICS := 1
# Stages run `python ...`: the venv must come first on PATH even if it is not activated.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install wordnet chromium repro test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_SPEC)
	$(BIN)/python -m pip install -e ".[dev]"
	$(MAKE) wordnet
	$(MAKE) chromium
	touch $@

# WUPS needs WordNet offline: NLTK's data if present, else Debian's wordnet-base (installed here
# when running as root with apt; otherwise the command to run is printed and WUPS is reported
# as unavailable).
wordnet:
	@if $(BIN)/python -c "import sys; from vqalab.evaluation.wordnet import load_wordnet; sys.exit(load_wordnet()[0] is None)"; then \
		echo "WordNet: available"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base; \
	else \
		echo "WordNet not found: run 'sudo apt-get install wordnet-base' or '$(BIN)/python -m nltk.downloader wordnet' for WUPS"; \
	fi

# The error gallery's browser test (tests/test_gallery.py) drives headless Chromium: Debian's
# package, installed here when running as root with apt; otherwise the command to run is printed
# and the test is skipped.
chromium:
	@if [ -x /usr/bin/chromium ]; then \
		echo "Chromium: available"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "Chromium not found: run 'sudo apt-get install chromium' for the gallery's browser test"; \
	fi

repro: install
	$(BIN)/dvc repro

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV)
