"""Writes the pip requirement files that `make install` and `make test` install, from uv.lock.

    usage: python scripts/export_lock.py [FOLDER]   (default: requirements/; `make lock` runs it)

- run.txt: everything the pipeline needs, torch and its CUDA runtime as PyPI serves them;
- run-no-torch.txt: the same without torch, torchvision and the packages only PyPI's Linux torch
  needs (its CUDA runtime), for an install that takes torch from another index (TORCH_INDEX);
- test.txt: what `make test` adds (the `test` dependency group).

Each pins every package with its hashes, so pip installs exactly the lock (`--require-hashes`
refuses anything unlisted). tests/test_lock.py writes them again and compares.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Exported from uv.lock by `make lock` (scripts/export_lock.py): do not edit. See docs/environment.md.\n"


def uv() -> str:
    """The environment's own uv (pinned in the lock), else one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.is_file() else shutil.which("uv") or sys.exit("uv not found: run `make install-test`")


def torch_runtime(lock: dict) -> list[str]:
    """torch's Linux-only dependencies in the lock: the CUDA runtime of PyPI's Linux wheels, which a
    build from another index (the CPU builds, or another CUDA) does not use."""
    torch = next(package for package in lock["package"] if package["name"] == "torch")
    return sorted(dependency["name"] for dependency in torch["dependencies"]
                  if "sys_platform == 'linux'" in dependency.get("marker", ""))


def export(*options: str) -> str:
    command = [uv(), "export", "--frozen", "--no-emit-project", "--no-header", "--format", "requirements-txt", *options]
    return HEADER + subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout


def requirement_files() -> dict[str, str]:
    """File name -> text, as `make lock` writes them."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    no_torch = ["--no-emit-package", "torch", "--no-emit-package", "torchvision"]
    for name in torch_runtime(lock):
        no_torch += ["--prune", name]
    return {
        "run.txt": export("--no-default-groups"),
        "run-no-torch.txt": export("--no-default-groups", *no_torch),
        "test.txt": export("--only-group", "test"),
    }


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else ROOT / "requirements"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in requirement_files().items():
        (folder / name).write_text(text)
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main(sys.argv[1:])
