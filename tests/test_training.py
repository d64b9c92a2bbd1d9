"""The training loop: determinism on the CPU and model selection on validation."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from configs import family_config
from vqalab.config import TrainParams
from vqalab.data.dataset import VQADataset
from vqalab.data.schema import Record
from vqalab.data.vocab import AnswerVocab
from vqalab.evaluation.predict import predict_dataset
from vqalab.evaluation.scores import image_sensitivity
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig
from vqalab.runtime import library_versions, seed_everything
from vqalab.training.loop import fit, linear_warmup_then_decay

CONFIG = family_config("resnet_bert", image_size=32, image_encoder="resnet_small", image_weights=None,
                       image_widths=(8, 8, 16, 16), image_training="full", text_training="frozen", trainable_blocks=1,
                       hidden_size=16, dropout=0.1, question_prior=False, lr=1e-3)
# Spelled out, not read from params.yaml: these tests pin the loop's behaviour, whatever the project's schedule.
PARAMS = TrainParams(max_epochs=2, patience=2, batch_size=8, weight_decay=0.01, warmup_ratio=0.05, grad_clip=1.0,
                     answer_part_credit=0.0, device="auto", target_val_accuracy=None, resume=False, precision="auto",
                     launcher="python", compile=False)


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
    # The state holds what training changes: not the frozen text encoder (MiniLM, 90 MB).
    saved = torch.load(state, weights_only=False)["model"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not [k for k in saved if k.startswith("text_encoder.")] and trainable <= set(saved)
    assert state.stat().st_size < 10 * 2**20

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


def test_a_saved_state_made_with_other_inputs_is_not_resumed(tmp_path, caplog):
    """The issue's case: resuming with another learning rate must not continue the old schedule."""
    params = replace(PARAMS, max_epochs=3, patience=3, resume=True)
    train, val = datasets()
    state = tmp_path / "state.pt"
    old = {"params": {"family": {"lr": 0.002}}, "data": "d1", "code": {"source": "c1"}}

    def kill_after_first_epoch(epoch, metrics):
        if epoch == 1:
            raise Killed

    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    with pytest.raises(Killed):
        fit(model, train, val, params=params, device=torch.device("cpu"), seed=0, on_epoch_end=kill_after_first_epoch,
            state_path=state, fingerprint=old)
    new = {**old, "params": {"family": {"lr": 0.0001}}}
    seen = []
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    with caplog.at_level("WARNING"):
        result = fit(model, train, val, params=params, device=torch.device("cpu"), seed=0,
                     on_epoch_end=lambda epoch, metrics: seen.append(epoch), state_path=state, fingerprint=new)
    assert "was made with other inputs (params.family.lr: 0.002 -> 0.0001): starting afresh" in caplog.text
    assert seen == [1, 2, 3] and result.epochs_run == 3  # epoch 1 was trained again, not restored
    # With the same fingerprint the state is resumed.
    state.unlink()
    with pytest.raises(Killed):
        fit(ResNetBert.build(CONFIG, train.vocab.answers), train, val, params=params, device=torch.device("cpu"),
            seed=0, on_epoch_end=kill_after_first_epoch, state_path=state, fingerprint=new)
    caplog.clear()
    with caplog.at_level("INFO"):
        fit(ResNetBert.build(CONFIG, train.vocab.answers), train, val, params=params, device=torch.device("cpu"),
            seed=0, state_path=state, fingerprint=new)
    assert "resuming after epoch 1" in caplog.text


def test_the_model_ends_with_the_weights_of_its_best_validation_epoch(monkeypatch):
    """Validation accuracy 0.5, 0.9, 0.6: the model must hold epoch 2's weights, not the last."""
    import vqalab.training.loop as loop

    scores = iter([0.5, 0.9, 0.6])
    monkeypatch.setattr(loop, "validation_accuracy", lambda *args, **kwargs: next(scores))
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    snapshots = {}
    result = fit(model, train, val, params=replace(PARAMS, max_epochs=3, patience=3), device=torch.device("cpu"),
                 seed=0, on_epoch_end=lambda epoch, _: snapshots.update(
                     {epoch: {k: v.clone() for k, v in model.state_dict().items()}}))
    assert result.best_epoch == 2 and result.epochs_run == 3
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[2][k]) for k in final)
    assert not all(torch.equal(final[k], snapshots[3][k]) for k in final)


@pytest.mark.parametrize(("starts_as_baseline", "best_epoch"), [(True, 0), (False, 1)])
def test_a_model_that_starts_as_its_baseline_is_kept_if_no_epoch_beats_it(monkeypatch, starts_as_baseline, best_epoch):
    """A head that starts at zero over the blind baseline is validated before training (0.9 here);
    epochs that do worse on validation (0.5, 0.6) leave the model as it started."""
    import vqalab.training.loop as loop

    scores = iter([0.9, 0.5, 0.6] if starts_as_baseline else [0.5, 0.4])
    monkeypatch.setattr(loop, "validation_accuracy", lambda *args, **kwargs: next(scores))
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(replace(CONFIG, question_prior=starts_as_baseline), train.vocab.answers)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, train, val, params=replace(PARAMS, max_epochs=2, patience=2), device=torch.device("cpu"),
                 seed=0)
    assert (result.best_epoch, result.epochs_run) == (best_epoch, 2)
    kept = all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert kept == starts_as_baseline
    assert next(scores, None) is None  # validated before training only when the model starts as its baseline


def test_the_fusion_head_over_the_question_prior_starts_as_its_baseline():
    prior = ResNetBert.build(replace(CONFIG, question_prior=True, text_training="frozen"), ["yes", "no"])
    assert prior.starts_as_baseline and not ResNetBert.build(CONFIG, ["yes", "no"]).starts_as_baseline


def test_a_batch_with_every_answer_outside_the_vocabulary_still_takes_part_in_backward():
    """Under DDP every process must run backward in every step; a None loss would skip it."""
    from vqalab.data.vocab import IGNORE_INDEX
    from vqalab.models.base import classification_loss

    logits = torch.randn(3, 4, requires_grad=True)
    loss = classification_loss(logits, torch.full((3,), IGNORE_INDEX))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 4))


def loop_reads_of_the_device(monkeypatch) -> list[str]:
    """Records every ``Tensor.item`` / ``float(tensor)`` the training loop's own code makes (each
    waits for the GPU); the optimiser's reads of its CPU step counters are not the loop's."""
    import sys

    reads = []
    for name in ("item", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name):
            if sys._getframe(1).f_globals.get("__name__") == "vqalab.training.loop":
                reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def test_the_loss_is_read_from_the_device_once_per_epoch(monkeypatch):
    """Not once per step: 24 questions in batches of 8 are 3 steps an epoch, and one read."""
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    reads = loop_reads_of_the_device(monkeypatch)
    result = fit(model, train, val, params=replace(PARAMS, max_epochs=2), device=torch.device("cpu"), seed=0)
    assert result.epochs_run == 2 and len(reads) == 2


def test_a_progress_bar_on_a_terminal_shows_the_loss_every_few_steps(monkeypatch):
    import io

    from tqdm import tqdm

    import vqalab.training.loop as loop

    monkeypatch.setattr(loop, "progress", lambda iterable, **kwargs: tqdm(iterable, file=io.StringIO(), disable=False))
    monkeypatch.setattr(loop, "LOSS_DISPLAY_STEPS", 2)
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    reads = loop_reads_of_the_device(monkeypatch)
    fit(model, train, val, params=replace(PARAMS, max_epochs=1), device=torch.device("cpu"), seed=0)
    assert len(reads) == 2  # the bar after step 2 of 3, and the epoch's loss


def test_adamw_is_fused_on_cuda_and_pytorchs_default_elsewhere():
    from vqalab.training.loop import build_optimizer

    model = ResNetBert.build(CONFIG, ["red", "blue"])
    assert build_optimizer(model, weight_decay=0.01, device=torch.device("cuda")).defaults["fused"] is True
    assert not build_optimizer(model, weight_decay=0.01, device=torch.device("cpu")).defaults["fused"]


def test_collated_batches_are_pinned_for_cuda_and_cached_ones_gathered_on_the_device(monkeypatch):
    """A DataLoader pins its batches for CUDA only; with every input cached, the feature tables go
    to the device once and each batch is a gather there ("meta" stands in for a GPU)."""
    from vqalab.data.dataset import IndexedBatches
    from vqalab.data.features import CachedFeatures
    from vqalab.training.loop import training_batches

    train, _ = datasets()
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    batches = {device: training_batches(model, train, batch_size=8, generator=torch.Generator(),
                                        device=torch.device(device), indexed=True) for device in ("cuda", "cpu")}
    assert batches["cuda"].pin_memory and not batches["cpu"].pin_memory
    train.features = CachedFeatures(fingerprints={"image": "i", "question": "q"}, image=torch.randn(len(train.image_row), 4, 16),
                                    question=torch.randn(1, 16), question_row={"what colour is it?": 0})
    cached = training_batches(model, train, batch_size=8, generator=torch.Generator().manual_seed(0),
                              device=torch.device("meta"), indexed=True)
    assert isinstance(cached, IndexedBatches)
    moves = []
    original_to = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: moves.append(self.shape) or original_to(self, *a, **k))
    epoch = list(cached)
    assert len(epoch) == 3 and all(v.is_meta for batch in epoch for v in batch.values())
    assert moves == [torch.Size([24])]  # the epoch's shuffled order, not a table per batch


def test_channels_last_is_for_cnn_image_encoders_on_cuda():
    from vqalab.models.base import VQAModel
    from vqalab.runtime import to_device, use_channels_last

    cnn = ResNetBert.build(CONFIG, ["red", "blue"])
    assert use_channels_last(cnn, torch.device("cuda"))
    assert not use_channels_last(cnn, torch.device("cpu")) and not use_channels_last(VQAModel(), torch.device("cuda"))
    batch = to_device({"pixel_values": torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "labels": torch.zeros(2)},
                      torch.device("cpu"), channels_last=True)
    assert batch["pixel_values"].is_contiguous(memory_format=torch.channels_last)
    assert batch["pixel_values"].dtype == torch.uint8  # normalised by the model, on the device
    assert batch["labels"].is_contiguous()


def test_a_channels_last_run_ends_with_contiguous_weights(monkeypatch):
    """Checkpoints are safetensors, which hold contiguous tensors only."""
    import vqalab.training.loop as loop

    monkeypatch.setattr(loop, "use_channels_last", lambda model, device: True)
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    seen = []
    result = fit(model, train, val, params=replace(PARAMS, max_epochs=1), device=torch.device("cpu"), seed=0,
                 on_epoch_end=lambda epoch, _: seen.append(model.image_encoder.stages[0][0].weight.is_contiguous()))
    assert seen == [False], "trained in channels_last"
    assert math.isfinite(result.history[0]["train_loss"])
    assert all(v.is_contiguous() for v in model.state_dict().values())


@pytest.mark.parametrize("compile", [True, False])
def test_train_compile_compiles_the_training_forward(monkeypatch, compile):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    train, val = datasets()
    seed_everything(0)
    model = ResNetBert.build(CONFIG, train.vocab.answers)
    fit(model, train, val, params=replace(PARAMS, max_epochs=1, compile=compile), device=torch.device("cpu"), seed=0)
    assert compiled == ([model] if compile else [])


def test_image_sensitivity_is_zero_for_a_model_that_ignores_the_image_and_positive_for_one_that_reads_it():
    train, val = datasets()
    seed_everything(0)
    reader = ResNetBert.build(CONFIG, train.vocab.answers)
    result = fit(reader, train, val, params=replace(PARAMS, max_epochs=12, patience=12), device=torch.device("cpu"), seed=0)
    assert result.best_val_accuracy == 1.0
    ignorer = ResNetBert.build(CONFIG, train.vocab.answers)
    ignorer.load_state_dict(reader.state_dict())
    with torch.no_grad():  # the same model with its image path cut: only the question reaches the head
        ignorer.image_proj.weight.zero_()
        ignorer.image_proj.bias.zero_()

    def answers(model, dataset):
        return [top[0][0] for top in predict_dataset(model, dataset, batch_size=4, device=torch.device("cpu"), progress=False)]

    shuffled = val.with_shuffled_images()
    assert [val.image_rows[i] for i in range(len(val))] != shuffled.image_rows  # the permutation moves images
    assert image_sensitivity(answers(ignorer, val), answers(ignorer, shuffled)) == 0.0
    # The answer is the image's colour: a model that learnt it answers differently for every
    # question whose shuffled image has the other colour.
    read, read_shuffled = answers(reader, val), answers(reader, shuffled)
    assert read == [r.answer for r in val.records]
    assert image_sensitivity(read, read_shuffled) > 0
    with pytest.raises(ValueError, match="one shuffled-image answer per answer"):
        image_sensitivity(read, read_shuffled[:-1])


@pytest.mark.parametrize(("warmup_steps", "total_steps"), [(0, 10), (3, 20), (5, 5), (0, 1)])
def test_the_schedule_is_transformers_linear_schedule_with_warmup(warmup_steps, total_steps):
    from transformers import get_linear_schedule_with_warmup

    rates = []
    for schedule in (get_linear_schedule_with_warmup, linear_warmup_then_decay):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = schedule(optimizer, warmup_steps, total_steps)
        steps = []
        for _ in range(total_steps + 2):
            steps.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        rates.append(steps)
    assert rates[0] == rates[1]


def test_batches_by_image_keep_each_images_questions_together():
    """``IndexedBatches(by_image=True)``: every question once per epoch, each image's questions
    adjacent, each batch's distinct images given once with the index of every question's."""
    from vqalab.data.dataset import IndexedBatches
    from vqalab.data.features import CachedFeatures

    n_images, questions = 7, [f"question {i}?" for i in range(5)]
    records = [Record(id=f"r{i}", image=f"{i % n_images}.png", question=questions[i % 5], answer=f"a{i % 3}",
                      answer_raw="", split="train", answer_type="open") for i in range(40)]
    features = CachedFeatures(fingerprints={"image": "x", "question": "y"},
                              image=torch.arange(n_images, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 2, 2, 2),
                              question=torch.randn(5, 4), question_row={q: i for i, q in enumerate(questions)})
    data = VQADataset(records, np.zeros((n_images, 3, 8, 8), np.uint8), {f"{i}.png": i for i in range(n_images)},
                      AnswerVocab(["a0", "a1", "a2"]), features)

    def epoch(seed):
        return list(IndexedBatches(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed),
                                   by_image=True))

    batches = epoch(0)
    image_of_question = torch.cat([b["image_features"][b["image_index"], 0, 0, 0] for b in batches]).long().tolist()
    assert sorted(image_of_question) == sorted(i % n_images for i in range(40))
    runs = [image for k, image in enumerate(image_of_question) if k == 0 or image != image_of_question[k - 1]]
    assert len(runs) == n_images  # one run of questions per image
    assert all(len(b["image_features"]) == len(set(b["image_index"].tolist())) for b in batches)
    assert [b["labels"].tolist() for b in epoch(0)] == [b["labels"].tolist() for b in batches]
    assert image_of_question != torch.cat([b["image_features"][b["image_index"], 0, 0, 0] for b in epoch(1)]).long().tolist()
