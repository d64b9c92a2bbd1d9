"""The lock holds: uv.lock agrees with pyproject.toml, the requirement files that `make install`
reads are uv.lock exported, and this environment is exactly them. All offline, in a second."""

import importlib.util
import os
import shutil
import subprocess
import sys
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
UV = shutil.which("uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

needs_uv = pytest.mark.skipif(UV is None, reason="no uv: run `make install-test`")


def export_lock():
    spec = importlib.util.spec_from_file_location("export_lock", ROOT / "scripts/export_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def uv_lock_check(project: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """uv's own check that uv.lock satisfies pyproject.toml, offline: with nothing cached, any
    requirement that the lock does not already satisfy fails to resolve instead of being fetched."""
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run([UV, "lock", "--check", "--offline", "--python", sys.executable], cwd=project,
                          env=env, capture_output=True, text=True, timeout=60)


def pins(name: str) -> dict[str, Version]:
    """Package -> version of one requirement file, for this platform (markers evaluated)."""
    found = {}
    for line in (REQUIREMENTS / name).read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement = Requirement(line.rstrip(" \\"))
            if requirement.marker is None or requirement.marker.evaluate():
                (specifier,) = requirement.specifier
                found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


@needs_uv
def test_the_lock_agrees_with_pyproject(tmp_path):
    result = uv_lock_check(ROOT, tmp_path)
    assert result.returncode == 0, (
        "pyproject.toml and uv.lock disagree: run `make lock` (docs/environment.md). uv tried to resolve"
        " again, offline, and names the first package it could not fetch:\n" + result.stderr[-3000:])


@needs_uv
@pytest.mark.parametrize("edit", [None, ('"tqdm>=4.66",', '"tqdm>=4.66", "rich>=13",'), ('"scipy>=1.11"', '"scipy>=99"')],
                         ids=["unchanged", "a dependency added", "a bound raised"])
def test_the_lock_check_catches_a_pyproject_edit_the_lock_lacks(tmp_path, edit):
    """The check above can fail: on a copy of the project, pyproject.toml edited and uv.lock not."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("uv.lock", "README.md"):  # README.md: pyproject's `readme`
        shutil.copy(ROOT / name, project)
    pyproject = (ROOT / "pyproject.toml").read_text()
    if edit:
        assert edit[0] in pyproject
        pyproject = pyproject.replace(edit[0], edit[1])
    (project / "pyproject.toml").write_text(pyproject)
    result = uv_lock_check(project, tmp_path)
    assert (result.returncode != 0) == bool(edit), result.stderr[-3000:]


@needs_uv
def test_the_requirement_files_are_the_lock_exported():
    expected = export_lock().requirement_files()
    assert sorted(expected) == sorted(p.name for p in REQUIREMENTS.glob("*.txt"))
    for name, text in expected.items():
        assert (REQUIREMENTS / name).read_text() == text, f"requirements/{name} is not uv.lock's export: run `make lock`"


def test_the_no_torch_files_leave_out_torch_and_its_cuda_runtime():
    """What an install from TORCH_INDEX reads lacks torch, torchvision and what only PyPI's Linux
    torch needs, and keeps the rest (nvidia-ml-py is dvclive's, not torch's)."""
    full, no_torch = pins("run.txt"), pins("run-no-torch.txt")
    left_out = set(full) - set(no_torch)
    assert {"torch", "torchvision", "triton", "nvidia-cudnn-cu13", "nvidia-cublas"} <= left_out
    assert all(name in {"torch", "torchvision", "triton"} or name.startswith(("nvidia-", "cuda-")) for name in left_out)
    assert "nvidia-ml-py" in no_torch and no_torch.items() <= full.items()


def test_this_environment_is_the_lock():
    """Every installed distribution, at the locked version, and nothing else: `make install-test`
    installs requirements/run.txt (or run-no-torch.txt plus torch from TORCH_INDEX) and test.txt."""
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version) for d in distributions()}
    installed.pop("vqalab")  # the project itself, editable
    installed.pop("pip")  # the virtual environment's own
    torch = installed["torch"]
    if torch.local:  # a build from TORCH_INDEX, e.g. 2.14.1+cpu: compared without its local label
        expected = pins("run-no-torch.txt") | pins("test.txt")
        for name in ("torch", "torchvision"):
            expected[name] = Version(installed[name].public)
            assert expected[name] == pins("run.txt")[name]
    else:
        expected = pins("run.txt") | pins("test.txt")
    differences = {name: (expected.get(name), installed.get(name)) for name in expected.keys() | installed.keys()
                   if expected.get(name) != installed.get(name)}
    assert not differences, f"(locked, installed) where they differ: {differences}; `make clean install-test`"
