"""What every script in bench/ shares: its settings composed from conf/ as `dvc exp run` composes
params.yaml, a value written as an -S override, and its results written with when and where they
were measured.

The scripts run from the project root, as DVC and the stages do: conf/ is read from there.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vqalab.io import atomic_path, write_json
from vqalab.params import CONF_DIR, Params, composed
from vqalab.pipeline.validate import check_params
from vqalab.runtime import library_versions, processor_name


def typed(values: dict) -> Params:
    """``values`` (params.yaml's) with every section typed, as the stages type the ones they read:
    a wrong value fails here, naming its key, not in a stage minutes later."""
    params = Params(values)
    check_params(params)
    return params


def composed_params(overrides: Sequence[str]) -> Params:
    """The parameters conf/ composes with ``overrides`` (`dvc exp run -S` syntax: ``model=pubmedclip``,
    ``train.precision=bf16``), typed."""
    if not (Path(CONF_DIR) / "config.yaml").is_file():
        raise FileNotFoundError(f"{Path(CONF_DIR).resolve()}/config.yaml not found: run the benchmark from the "
                                f"project root (where conf/ and dvc.yaml are)")
    return typed(composed(CONF_DIR, list(overrides)))


def overrides(values: dict[str, Any]) -> list[str]:
    """{dotted key: value} as overrides of ``composed_params`` or `dvc exp run -S`: each value
    written as JSON, which Hydra reads back as the same text (a path with any characters), number,
    boolean, null or list."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def measured_on() -> dict[str, Any]:
    """When and where figures were measured: the date (UTC), the processor (lscpu's model name), the
    CPUs this process may use and the machine's load (other processes' share of them slows every
    figure down), and the libraries."""
    return {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "processor": processor_name(),
            "cpus": usable_cpus(), "load_average_1_5_15_min": [round(load, 1) for load in os.getloadavg()],
            "platform": platform.platform(), **library_versions()}


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's share, where the OS says), else all of them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def write_results(out: Path, result: dict, *, table: str | None = None) -> None:
    """``out`` (JSON): ``result`` under the command that made it and ``measured_on``'s record; with
    ``table`` (Markdown), also ``out`` with the suffix .md: a line saying when and on what processor
    (and how busy it was), then the table."""
    measured = measured_on()
    write_json(out, {"command": shlex.join(["python", *sys.argv]), "measured_on": measured, **result})
    if table is not None:
        with atomic_path(out.with_suffix(".md")) as tmp:
            load = "/".join(map(str, measured["load_average_1_5_15_min"]))
            tmp.write_text(f"Written {measured['date']} on {measured['processor']} ({measured['cpus']} CPUs, load "
                           f"average {load} over 1/5/15 min), torch {measured['torch']}.\n\n{table}\n",
                           encoding="utf-8")
