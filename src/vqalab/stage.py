"""What every stage entry point shares: its argument parser and log format."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

PARAMS_DIR = Path("data/params")


def stage_parser(description: str, *, stage: str) -> argparse.ArgumentParser:
    """``--params`` defaults to the stage's own parameters, data/params/<stage>.json (the params
    stage writes them from params.yaml); the params stage itself reads params.yaml."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=description)
    default = Path("params.yaml") if stage == "params" else PARAMS_DIR / f"{stage}.json"
    parser.add_argument("--params", type=Path, default=default, help=f"the parameters file (default: {default})")
    return parser
