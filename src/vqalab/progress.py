"""Progress bars on a terminal only.

tqdm redraws its bar on every step; written to a log file (``dvc repro > log``, CI) that is one
line per batch - a 3.5-minute run made a 756 KB log. Off a terminal the bars are off, and the
callers log one line per epoch or per stage instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm import tqdm


def progress(iterable: Iterable, *, desc: str, unit: str, enabled: bool = True, leave: bool = True) -> Iterable:
    # disable=None: tqdm shows the bar only when its stream (stderr) is a terminal.
    return tqdm(iterable, desc=desc, unit=unit, leave=leave, disable=None if enabled else True)


def quiet_library_bars() -> None:
    """Off a terminal, turn off the Hugging Face libraries' own bars too ("Loading weights",
    "Writing model shards": one redraw per tensor in a log). The variable is read when
    transformers is imported; one already imported is told directly."""
    if sys.stderr.isatty():
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
