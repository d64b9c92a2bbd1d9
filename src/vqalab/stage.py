"""What every stage entry point shares: its argument parser and log format."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def stage_parser(description: str) -> argparse.ArgumentParser:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the params file (default: params.yaml)")
    return parser
