"""Two-process data-parallel training (Accelerate, DDP over gloo) of the real train stage on the CPU."""

import json
import socket

import pytest

from conftest import BIN, DVC, init_project, run
from vqalab.models.checkpoint import load_checkpoint

TRAIN_ARGS = ["stages/train.py", "--data", "data/processed/easy_vqa", "--features", "data/features/easy_vqa-resnet_bert"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def outputs(root, name):
    return ["--out", f"runs/{name}/model", "--live", f"runs/{name}/live", "--state", f"runs/{name}/state.pt"]


@pytest.mark.slow
def test_two_processes_train_with_the_same_global_batch_and_metrics(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    env = init_project(root, **{"download.max_images_per_split": 12, "train.max_epochs": 2, "train.batch_size": 8})
    run([DVC, "repro", "features"], root, env)

    run([str(BIN / "python"), *TRAIN_ARGS, *outputs(root, "one")], root, env)
    # --multi_gpu selects torch.distributed.run, the launcher of several GPUs; without CUDA it runs on gloo.
    launch = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    run([*launch, *TRAIN_ARGS, *outputs(root, "two")], root, {**env, "OMP_NUM_THREADS": "1"})

    one = json.loads((root / "runs/one/model/checkpoint.json").read_text())
    two = json.loads((root / "runs/two/model/checkpoint.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    # train.batch_size is the global batch: two processes hold 4 questions each, 8 in all.
    assert one["global_batch_size"] == two["global_batch_size"] == 8
    assert one["epochs_run"] == two["epochs_run"] == 2
    assert one.keys() == two.keys()
    metrics_one = json.loads((root / "runs/one/live/metrics.json").read_text())
    metrics_two = json.loads((root / "runs/two/live/metrics.json").read_text())
    assert metrics_one.keys() == metrics_two.keys() and metrics_two["step"] == 1
    curves = lambda name: sorted(p.name for p in (root / f"runs/{name}/live/plots/metrics").iterdir())  # noqa: E731
    assert curves("one") == curves("two")
    assert not (root / "runs/two/state.pt").exists(), "a finished run leaves no training state"
    # Only the main process writes: one checkpoint, loadable like any other.
    model, _ = load_checkpoint(root / "runs/two/model")
    assert model.answers == one["answers"]
