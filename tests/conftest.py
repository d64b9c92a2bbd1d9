import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# Nothing in the tests may reach a model hub (and a missing hub id would retry for ~26 s).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Helpers of the end-to-end tests (test_pipeline, test_remote), which run the real dvc.yaml and
# stages in a temporary git repository.
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DVC = str(BIN / "dvc")


def run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def set_params(root: Path, **changes):
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def pipeline_env() -> dict[str, str]:
    """The environment of the tests' git and dvc commands: this venv's dvc and python first, offline."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def init_project(root: Path, **params) -> dict[str, str]:
    """A copy of the project's pipeline in `root` (a new git + DVC repository with one commit), with
    `params` changed; returns the environment to run git and dvc in it."""
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, root / name)
    for name in ("stages", "src"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    set_params(root, **params)
    env = pipeline_env()
    run(["git", "init", "-q"], root, env)
    run([DVC, "init", "-q"], root, env)
    # As in a clone: DVCLive and `dvc exp` need a repository with at least one commit.
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "project"], root, env)
    return env


@pytest.fixture(scope="session")
def reproduced_project(tmp_path_factory):
    """The pipeline reproduced once, on a small slice of easy-VQA, and committed with the tag
    `baseline`: test_pipeline works in it, test_remote clones that commit (one repro for both)."""
    root = tmp_path_factory.mktemp("project")
    env = init_project(root, **{"download.max_images_per_split": 30, "train.max_epochs": 2, "evaluate.batch_size": 64})
    run([DVC, "repro"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "baseline"], root, env)
    run(["git", "tag", "baseline"], root, env)
    return root, env
