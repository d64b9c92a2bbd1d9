"""What every stage entry point shares: its argument parser, log format and error handling.

A stage reads params.yaml first (``vqalab.params.load_params``) and imports the step it runs after
that, so a wrong value fails within a second, before torch and transformers are imported.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from vqalab.params import PARAMS_FILE
from vqalab.progress import quiet_library_bars


def stage_parser(description: str) -> argparse.ArgumentParser:
    """The stage's parser; ``--params`` is params.yaml (conf/ beside it is what it is checked against)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_library_bars()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help=f"the parameters file (default: {PARAMS_FILE})")
    return parser


def run_stage(main) -> None:
    """Run a stage's ``main``: an error prints one line and exits 1, an interrupt exits 2;
    ``VQALAB_DEBUG=1`` shows the traceback instead. (A bad record, parameter or file is the user's
    to fix, and its message says how: a traceback in front of it only hides it.)"""
    if os.environ.get("VQALAB_DEBUG", "0") not in ("", "0"):
        main()
        return
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - every error becomes one line; VQALAB_DEBUG=1 shows where
        kind = "" if isinstance(err, (ValueError, OSError, KeyError)) else f"{type(err).__name__}: "
        message = str(err.args[0] if isinstance(err, KeyError) and err.args else err).strip() or type(err).__name__
        print(f"error: {kind}{message}  (VQALAB_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)
