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


# The copy's own values, last in its defaults list (what ``set_config`` writes).
LOCAL_CONFIG = "conf/local.yaml"


def set_config(root: Path, env: dict, **changes):
    """Values of the copy's conf/ changed, as a user changes them for good (in conf/local.yaml, last
    in its defaults list), and params.yaml composed anew with `vqalab compose`."""
    path = root / LOCAL_CONFIG
    values = yaml.safe_load(path.read_text()) if path.exists() else {}
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = values
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    path.write_text("# @package _global_\n" + yaml.safe_dump(values, sort_keys=False))
    run([str(BIN / "vqalab"), "compose"], root, env)


def pipeline_env() -> dict[str, str]:
    """The environment of the tests' git and dvc commands: this venv's dvc and python first, offline."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
            "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def init_project(root: Path, **values) -> dict[str, str]:
    """A copy of the project's pipeline in `root` (a new git + DVC repository with one commit), with
    `values` changed in its conf/; returns the environment to run git and dvc in it."""
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, root / name)
    for name in ("stages", "src", "conf"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    config = root / "conf/config.yaml"
    defaults, rest = config.read_text().split("\n\n", 1)  # the defaults list comes first, then a blank line
    assert defaults.rstrip().endswith("as the family sets it"), "conf/config.yaml: the defaults list should end with strategy"
    config.write_text(f"{defaults}\n  - {Path(LOCAL_CONFIG).stem}\n\n{rest}")
    env = pipeline_env()
    run(["git", "init", "-q"], root, env)
    run([DVC, "init", "-q"], root, env)
    shutil.copy(ROOT / ".dvc/config", root / ".dvc/config")  # Hydra composition on
    set_config(root, env, **values)
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
