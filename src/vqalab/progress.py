"""Progress bars on a terminal only.

tqdm redraws its bar on every step; written to a log file (``dvc repro > log``, CI) that is one
line per batch - a 3.5-minute run made a 756 KB log. Off a terminal the bars are off, and the
callers log one line per epoch or per stage instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from tqdm import tqdm


def progress(iterable: Iterable, *, desc: str, unit: str, enabled: bool = True, leave: bool = True) -> Iterable:
    # disable=None: tqdm shows the bar only when its stream (stderr) is a terminal.
    return tqdm(iterable, desc=desc, unit=unit, leave=leave, disable=None if enabled else True)
