"""Two-process data-parallel training (Accelerate, DDP over gloo) of the real train stage on the CPU."""

import json
import shutil
import socket
from pathlib import Path

import pytest

from conftest import BIN, run, set_config
from vqalab.models.checkpoint import load_checkpoint

TRAIN_ARGS = ["stages/train.py", "--data", "data/processed/easy_vqa", "--features", "data/features/easy_vqa-resnet_bert",
              "--blind", "data/blind/easy_vqa"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def outputs(root, name):
    return ["--params", str(root / "params.yaml"), "--out", str(root / f"runs/{name}/model"),
            "--live", str(root / f"runs/{name}/live"), "--cost", str(root / f"runs/{name}/cost.json"),
            "--state", str(root / f"runs/{name}/state.pt")]


@pytest.mark.slow
def test_two_processes_train_with_the_same_global_batch_and_metrics(tmp_path, reproduced_project):
    """The train stage on the shared project's data, features and blind baseline, with a batch of 8
    (its own conf/ and params.yaml, composed here; the project is not changed)."""
    project, env = reproduced_project
    root = tmp_path
    shutil.copytree(project / "conf", root / "conf")
    set_config(root, env, **{"train.max_epochs": 2, "model.batch_size": 8})

    run([str(BIN / "python"), *TRAIN_ARGS, *outputs(root, "one")], project, env)
    # --multi_gpu selects torch.distributed.run, the launcher of several GPUs; without CUDA it runs on gloo.
    launch = [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    run([*launch, *TRAIN_ARGS, *outputs(root, "two")], project, {**env, "OMP_NUM_THREADS": "1"})

    one = json.loads((root / "runs/one/model/checkpoint.json").read_text())
    two = json.loads((root / "runs/two/model/checkpoint.json").read_text())
    assert (one["processes"], two["processes"]) == (1, 2)
    # The family's batch_size is the global batch: two processes hold 4 questions each, 8 in all.
    assert one["global_batch_size"] == two["global_batch_size"] == 8
    assert one["epochs_run"] == two["epochs_run"] == 2
    assert one.keys() == two.keys()
    metrics_one = json.loads((root / "runs/one/live/metrics.json").read_text())
    metrics_two = json.loads((root / "runs/two/live/metrics.json").read_text())
    assert metrics_one.keys() == metrics_two.keys() and metrics_two["step"] == two["best_epoch"]
    curves = lambda name: sorted(p.name for p in (root / f"runs/{name}/live/plots/metrics").iterdir())  # noqa: E731
    assert curves("one") == curves("two")
    assert not (root / "runs/two/state.pt").exists(), "a finished run leaves no training state"
    # Only the main process writes: one checkpoint, loadable like any other.
    model, _ = load_checkpoint(root / "runs/two/model")
    assert model.answers == one["answers"]


def _train_one_step(rank: int, store: str, oov_rank: int, done: str) -> None:
    """One DDP step of the real model; on ``oov_rank`` every answer is outside the vocabulary."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from test_models import ANSWERS, TINY, items
    from vqalab.data.vocab import IGNORE_INDEX
    from vqalab.models.resnet_bert import ResNetBert

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = ResNetBert.build(TINY, ANSWERS)
    ddp = DistributedDataParallel(model)
    batch = items(64)
    if rank == oov_rank:
        batch = [{**item, "label": IGNORE_INDEX} for item in batch]
    ddp(model.collate(batch)).loss.backward()  # the loop's step: every rank joins the gradient all-reduce
    grad = model.classifier[-1].weight.grad
    dist.all_reduce(check := grad.clone())
    assert torch.allclose(check, 2 * grad)  # both ranks hold the same averaged gradient
    Path(f"{done}.{rank}").write_text("ok")
    dist.destroy_process_group()


@pytest.mark.slow
def test_a_rank_whose_batch_is_all_outside_the_vocabulary_still_takes_part_in_the_step(tmp_path):
    """With preprocess.min_answer_count > 1 a shard can hold only answers outside the vocabulary;
    its zero loss keeps the graph, so the other rank's all-reduce does not wait forever."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    store, done = str(tmp_path / "store"), str(tmp_path / "done")
    processes = [context.Process(target=_train_one_step, args=(rank, store, 1, done)) for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    hung = [p.pid for p in processes if p.is_alive()]
    for process in processes:
        process.kill()
    assert not hung, "a rank waited forever in the gradient all-reduce"
    assert [p.exitcode for p in processes] == [0, 0]
    assert all(Path(f"{done}.{rank}").read_text() == "ok" for rank in range(2))
