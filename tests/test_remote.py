"""A DVC remote: what one clone trains and pushes, another clone pulls and does not retrain."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from conftest import DVC, run

pytestmark = pytest.mark.slow

# The outputs DVC caches (and a remote stores); the metrics, report and plots with `cache: false`
# travel in git.
DVC_OUTPUTS = ("data/raw/easy_vqa", "data/processed/easy_vqa", "data/blind/easy_vqa", "models/resnet_bert",
               "metrics/predictions.jsonl", "metrics/eval_details.json", "metrics/gallery.html")
GIT_OUTPUTS = ("metrics/eval.json", "metrics/cost.json",
               "metrics/plots/accuracy_by_answer_type.json", "metrics/plots/accuracy_by_frequency.json",
               "metrics/data_stats.json", "metrics/train/metrics.json", "metrics/report.md", "plots/training_curves.png")


def file_hashes(root: Path, output: str) -> dict[str, str]:
    """sha256 of every file of an output (a file or a folder), by path."""
    path = root / output
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def clones(tmp_path_factory, reproduced_project):
    """Clone A holds a reproduced pipeline (the shared project's `baseline` commit, its outputs
    from that project's cache) and pushes to a local-folder remote; clone B is a git clone of A
    (with its own, empty DVC cache) that has only run `dvc pull`."""
    project, env = reproduced_project
    tmp = tmp_path_factory.mktemp("remote")
    a, b, store = tmp / "a", tmp / "b", tmp / "dvc-store"
    run(["git", "clone", "-q", str(project), str(a)], tmp, env)
    run(["git", "checkout", "-q", "-b", "trained", "baseline"], a, env)
    run([DVC, "cache", "dir", "--local", str(project / ".dvc" / "cache")], a, env)
    run([DVC, "checkout"], a, env)
    assert "Data and pipelines are up to date" in run([DVC, "status"], a, env)
    run([DVC, "remote", "add", "-d", "store", str(store)], a, env)  # in .dvc/config: committed, so B has it
    run([DVC, "push"], a, env)
    # What a download stage of a hosted data set leaves: a scratch folder that git ignores (easy-VQA,
    # read from its package, leaves none).
    (a / "data/downloads").mkdir()
    (a / "data/downloads/archive.zip").write_bytes(b"fetched")
    run(["git", "add", "-A"], a, env)
    run(["git", "commit", "-qm", "trained, with a remote"], a, env)
    run(["git", "clone", "-q", "--branch", "trained", str(a), str(b)], tmp, env)
    tracked_before_pull = set(run(["git", "ls-files"], b, env).splitlines())
    missing_before_pull = [output for output in DVC_OUTPUTS if (b / output).exists()]
    pull = run([DVC, "pull"], b, env)
    return a, b, store, env, tracked_before_pull, missing_before_pull, pull


def test_cached_outputs_come_from_the_remote_and_metrics_from_git(clones):
    a, b, store, env, tracked, present_before_pull, pull = clones
    assert "dvc.lock" in tracked and ".dvc/config" in tracked
    for output in GIT_OUTPUTS:
        assert output in tracked, output
    for output in DVC_OUTPUTS:
        assert not any(path == output or path.startswith(output + "/") for path in tracked), output
    assert present_before_pull == []  # so B's copies below came from the remote, not from git
    assert not (b / "data/downloads").exists()  # the download stage's scratch folder stays with A
    for output in DVC_OUTPUTS:
        hashes = file_hashes(b, output)
        assert hashes and hashes == file_hashes(a, output), output
    for output in GIT_OUTPUTS:
        assert file_hashes(b, output) == file_hashes(a, output), output
    assert json.loads((b / "metrics/eval.json").read_text()) == json.loads((a / "metrics/eval.json").read_text())
    assert "Cache and remote 'store' are in sync" in run([DVC, "status", "--cloud"], b, env)


def test_pulled_clone_is_up_to_date_and_repro_retrains_nothing(clones):
    a, b, store, env, *_ = clones
    assert "Data and pipelines are up to date" in run([DVC, "status"], b, env)
    weights = b / "models/resnet_bert/model.safetensors"
    before = weights.stat().st_mtime_ns
    out = run([DVC, "repro"], b, env)
    assert "Running stage" not in out, out
    for stage in ("download", "preprocess", "features", "blind", "train", "evaluate", "report"):
        assert f"Stage '{stage}' didn't change, skipping" in out, out
    assert "Data and pipelines are up to date" in out
    assert weights.stat().st_mtime_ns == before
    assert run(["git", "status", "--porcelain"], b, env) == ""  # nothing rewritten, no lock change


def test_pull_from_a_missing_remote_fails_naming_the_outputs(clones, tmp_path):
    a, b, store, env, *_ = clones
    c = tmp_path / "c"
    run(["git", "clone", "-q", str(a), str(c)], tmp_path, env)
    # As a teammate whose remote points elsewhere (a local override of the committed URL).
    run([DVC, "remote", "modify", "--local", "store", "url", str(tmp_path / "no-such-store")], c, env)
    result = subprocess.run([DVC, "pull"], cwd=c, env=env, capture_output=True, text=True)
    message = result.stdout + result.stderr
    assert result.returncode != 0, message
    assert "failed to pull data from the cloud" in message
    for output in DVC_OUTPUTS:
        assert output in message, message
    assert not (c / "models/resnet_bert").exists()
