"""Where and how a process computes: its device, precision, seeds, and the machine it runs on.

Every entry point that computes (the stages, ``vqalab predict``, the benchmarks) resolves its
device here, and ``resolve_device`` also sets the CPU to flush subnormal floats to zero: as a
model converges, gradients and optimiser states underflow into subnormal numbers, which some x86
processors compute in microcode - training on a 2-core Xeon slowed 3x after the second epoch,
with the same validation accuracy to the fifth digit once they were flushed.
"""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

log = logging.getLogger(__name__)


def flush_denormals() -> bool:
    """Treat subnormal floats as zero in this process's CPU arithmetic (x86 with SSE3); whether it
    could. Their values are below 1.2e-38 (float32): nothing a model's output depends on."""
    return torch.set_flush_denormal(True)


def resolve_device(name: str, *, setting: str = "params: train.device") -> torch.device:
    """The device ``name`` (auto | cpu | cuda[:N]) names; ``setting`` names where it came from, for
    the error message. Every process that computes gets here, so it also flushes subnormals."""
    if not flush_denormals():
        log.info("this CPU cannot flush subnormal floats to zero: arithmetic on them may be slow")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{setting} = {name!r} but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.precision`` on ``device``; None for plain fp32.

    auto: bf16 on a GPU that supports it, fp16 (with a gradient scaler) on an older GPU, fp32 on
    the CPU, where bf16 autocast is only faster on CPUs with bf16 matrix units (bench/ measures it).
    """
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("params: train.precision = bf16 but this GPU has no bf16 support; use fp16 or auto")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def library_versions() -> dict[str, str]:
    """The versions a run depended on, recorded beside its results."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "transformers", "peft", "accelerate", "flash-attn", "sentence-transformers",
                    "dvc", "numpy", "vqalab"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def processor_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), e.g. "AMD EPYC 7B13"; its architecture elsewhere."""
    import platform
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, str]:
    """Where figures were made: the processor and its threads, the GPU if any, and torch's version.
    Another processor gives other low bits (its kernels sum in another order), so a figure says
    where it comes from."""
    described = {"processor": f"{processor_name()} ({torch.get_num_threads()} threads)", "torch": torch.__version__}
    if device.type == "cuda":
        described["gpu"] = torch.cuda.get_device_name(device)
    return described


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_channels_last(model, device: torch.device) -> bool:
    """Whether to train ``model`` in channels_last (NHWC) memory format: CUDA runs a CNN's
    convolutions faster so (its tensor-core kernels are NHWC); on the CPU it is off, as it was not
    measured faster there, and a transformer image encoder has no convolutions to gain."""
    return device.type == "cuda" and model.image_encoder_is_cnn


def to_device(batch: dict, device: torch.device, *, channels_last: bool = False) -> dict:
    """``batch`` on ``device``; from pinned memory the copies are asynchronous (``non_blocking``).
    With ``channels_last`` its images (4-D tensors) are made NHWC there, after the copy, which
    stays one plain block transfer."""
    def move(value: torch.Tensor) -> torch.Tensor:
        value = value.to(device, non_blocking=True)
        return value.contiguous(memory_format=torch.channels_last) if channels_last and value.dim() == 4 else value

    return {k: move(v) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
