from __future__ import annotations

import random

import numpy as np
import torch


def resolve_device(name: str, *, setting: str = "params: train.device") -> torch.device:
    """``setting`` names where ``name`` came from, for the error message."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{setting} = {name!r} but no CUDA device is available; use auto or cpu")
    return torch.device(name)


def library_versions() -> dict[str, str]:
    """The versions a run depended on, recorded beside its results."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "transformers", "peft", "sentence-transformers", "dvc", "numpy", "vqalab"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
