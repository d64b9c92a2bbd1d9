"""How every vqalab benchmark times a step: warm-up excluded, variants interleaved, repeated, median.

A *variant* is one thing to time (a model at a batch size and precision, or the plain reference
step): a ``step()`` that does one unit of work on ``samples`` questions, and optionally a
``context()`` that sets the global switches it runs under (TF32, cudnn.benchmark) for its own steps
only, so one variant's settings never leak into another's figures.

``measure`` runs every variant's warm-up steps first (kernel selection, the allocator, lazy
initialisation: none of it is timed), then ``repeats`` rounds; in each round every variant runs
``steps`` timed steps, in an order rotated from round to round, so a slow drift of the machine
(clocks, temperature, another process) spreads over all variants instead of landing on one. A
figure is the median over rounds; the spread (min, max) is kept beside it.

On CUDA, a timed block starts and ends with ``torch.cuda.synchronize``: work queued
asynchronously is counted in the block that queued it. Wall time (not CUDA events) is what is
measured, because a training step's host work - collation, the Python of the loop - is part of
what it costs.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from vqalab.benchmark.common import usable_cpus
from vqalab.runtime import library_versions

MIN_REPEATS = 3


@dataclass
class Variant:
    name: str
    step: Callable[[], object]
    samples: int  # questions per step
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    info: dict = field(default_factory=dict)  # what the variant is (family, batch, precision, ...), copied to its row


@dataclass
class Timing:
    name: str
    samples_per_s: float  # median over rounds
    samples_per_s_min: float
    samples_per_s_max: float
    rounds: list[float]  # samples/s of each round, in round order
    step_ms: float  # median time of one step
    peak_gib: float | None  # the most GPU memory allocated while the variant ran (CUDA only; see measure)
    info: dict

    def row(self) -> dict:
        return {"name": self.name, **self.info, "samples_per_s": self.samples_per_s,
                "samples_per_s_min": self.samples_per_s_min, "samples_per_s_max": self.samples_per_s_max,
                "rounds": self.rounds, "step_ms": self.step_ms, "peak_gib": self.peak_gib}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(variants: list[Variant], *, device: torch.device, warmup: int, steps: int,
            repeats: int = MIN_REPEATS) -> list[Timing]:
    """Time ``variants`` interleaved (see the module docstring); returns one ``Timing`` each, in order.

    Peak memory: on CUDA, the allocator's peak is reset before each of a variant's timed blocks and
    read after it; the variant's figure is the largest such peak. Variants built before ``measure``
    stay resident, so the peak counts their weights too: give each group of variants that should be
    compared for memory its own call, or read the figure as an upper bound.
    """
    if repeats < MIN_REPEATS:
        raise ValueError(f"repeats must be >= {MIN_REPEATS} for a median that one outlier cannot move, got {repeats}")
    if steps < 1 or warmup < 1:
        raise ValueError(f"steps and warmup must be >= 1 (warm-up is never timed), got steps={steps}, warmup={warmup}")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {names}")
    for variant in variants:
        with variant.context():
            for _ in range(warmup):
                variant.step()
        synchronize(device)
    seconds: dict[str, list[float]] = {v.name: [] for v in variants}
    peaks: dict[str, float] = {}
    for round_ in range(repeats):
        shift = round_ % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            with variant.context():
                synchronize(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                start = time.perf_counter()
                for _ in range(steps):
                    variant.step()
                synchronize(device)
                seconds[variant.name].append(time.perf_counter() - start)
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) / 2**30
                peaks[variant.name] = max(peaks.get(variant.name, 0.0), peak)
    timings = []
    for variant in variants:
        rates = [variant.samples * steps / s for s in seconds[variant.name]]
        timings.append(Timing(name=variant.name, samples_per_s=statistics.median(rates), samples_per_s_min=min(rates),
                              samples_per_s_max=max(rates), rounds=rates,
                              step_ms=1000 * statistics.median(seconds[variant.name]) / steps,
                              peak_gib=peaks.get(variant.name), info=dict(variant.info)))
    return timings


def environment(device: torch.device) -> dict:
    """What a figure depends on, recorded beside it: the card, the libraries, the CUDA build."""
    record = {"device": str(device), **library_versions(),
              "host_cpus": usable_cpus(), "torch_threads": torch.get_num_threads(), "cuda": torch.version.cuda,
              "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        record |= {"gpu": torch.cuda.get_device_name(device),
                   "gpu_memory_gib": round(properties.total_memory / 2**30, 1),
                   "gpu_capability": f"{properties.major}.{properties.minor}"}
    else:
        record["gpu"] = None
    return record


@contextlib.contextmanager
def fast_math(enabled: bool):
    """TF32 matmuls and convolutions and cudnn.benchmark for the steps inside, restored after:
    the plain reference step runs with them; a vqalab variant runs with whatever the library sets."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved
