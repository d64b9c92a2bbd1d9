"""The training loop: determinism on the CPU and model selection on validation."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from vqalab.config import TrainParams
from vqalab.data.dataset import VQADataset
from vqalab.data.schema import Record
from vqalab.data.vocab import AnswerVocab
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig
from vqalab.training.device import library_versions, seed_everything
from vqalab.training.loop import fit

CONFIG = ResNetBertConfig(image_size=32, image_encoder="resnet_small", image_widths=(8, 8, 16, 16),
                          text_encoder="packaged:all-MiniLM-L6-v2", text_training="frozen", hidden_size=16)
PARAMS = TrainParams(max_epochs=2, patience=2, batch_size=8)


def toy_split(split, n_images, rng):
    """Red or blue images; the answer is the colour."""
    images = np.zeros((n_images, 3, 32, 32), dtype=np.uint8)
    records = []
    for i in range(n_images):
        colour = ["red", "blue"][i % 2]
        images[i, 0 if colour == "red" else 2] = rng.integers(150, 255)
        records.append(Record(id=f"{split}-{i}", image=f"{split}/{i}.png", question="what colour is it?",
                              answer=colour, answer_raw=colour, split=split, answer_type="open"))
    return records, images


def datasets():
    rng = np.random.default_rng(0)
    (train, train_images), (val, val_images) = toy_split("train", 24, rng), toy_split("val", 8, rng)
    images = np.concatenate([train_images, val_images])
    rows = {r.image: i for i, r in enumerate(train + val)}
    vocab = AnswerVocab.build(r.answer for r in train)
    return VQADataset(train, images, rows, vocab), VQADataset(val, images, rows, vocab)


def train_once(seed=0):
    train, val = datasets()
    seed_everything(seed)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    result = fit(model, train, val, params=PARAMS, device=torch.device("cpu"), seed=seed)
    return result, model.state_dict()


def without_timings(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in ("elapsed_s", "train_samples_per_s")} for h in history]


def test_same_seed_same_run_on_cpu():
    (first, first_state), (second, second_state) = train_once(), train_once()
    timings = ("elapsed_s", "train_samples_per_s")
    strip = [{k: v for k, v in h.items() if k not in timings} for h in first.history]
    assert strip == [{k: v for k, v in h.items() if k not in timings} for h in second.history]
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)
    other, _ = train_once(seed=1)
    assert [h["train_loss"] for h in other.history] != [h["train_loss"] for h in first.history]


def test_early_stopping_keeps_the_best_validation_epoch():
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    result = fit(model, train, val, params=replace(PARAMS, max_epochs=6, patience=1), device=torch.device("cpu"), seed=0)
    accuracies = [h["val_accuracy"] for h in result.history]
    assert result.best_val_accuracy == max(accuracies)
    assert result.best_epoch == accuracies.index(max(accuracies)) + 1
    assert result.stop_reason in {"early_stopping", "max_epochs"}
    if result.stop_reason == "early_stopping":
        assert len(accuracies) == result.best_epoch + 1


def test_library_versions_are_recorded():
    versions = library_versions()
    assert versions["torch"] in torch.__version__
    assert {"python", "transformers", "dvc", "vqalab"} <= set(versions)


class Killed(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    params = replace(PARAMS, max_epochs=3, patience=3, resume=True)
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    uninterrupted = fit(model, train, val, params=params, device=torch.device("cpu"), seed=0)
    expected_state = model.state_dict()

    def kill_after_first_epoch(epoch, metrics):
        if epoch == 1:
            raise Killed

    state = tmp_path / "state.pt"
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    with pytest.raises(Killed):
        fit(model, train, val, params=params, device=torch.device("cpu"), seed=0,
            on_epoch_end=kill_after_first_epoch, state_path=state)
    assert state.is_file()

    seen = []
    seed_everything(123)  # a new process: nothing carried over but the state file
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    resumed = fit(model, train, val, params=params, device=torch.device("cpu"), seed=0,
                  on_epoch_end=lambda epoch, metrics: seen.append(epoch), state_path=state)
    assert seen == [1, 2, 3]  # the restored epoch is replayed to the logger, then 2 and 3 run
    assert without_timings(resumed.history) == without_timings(uninterrupted.history)
    assert all(torch.equal(expected_state[k], model.state_dict()[k]) for k in expected_state)


def test_without_resume_a_stale_state_is_discarded(tmp_path):
    train, val = datasets()
    state = tmp_path / "state.pt"
    state.write_bytes(b"left by an interrupted run")
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    result = fit(model, train, val, params=replace(PARAMS, max_epochs=1), device=torch.device("cpu"), seed=0,
                 state_path=state)
    assert result.epochs_run == 1


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_finite_losses(precision):
    """bf16 autocast, and fp16 with its gradient scaler, on the CPU: the same loop, finite losses."""
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, train, val, params=replace(PARAMS, max_epochs=2, patience=2, precision=precision),
                 device=torch.device("cpu"), seed=0)
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "the weights must change"
