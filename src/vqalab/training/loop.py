"""The one training loop, for every family.

Early stopping and model selection use validation accuracy only; the test split is never seen here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from vqalab.config import TrainParams, flatten
from vqalab.data.dataset import IndexedBatches, VQADataset
from vqalab.evaluation.metrics import accuracy
from vqalab.evaluation.predict import predict_dataset
from vqalab.io import atomic_path
from vqalab.models.base import VQAModel
from vqalab.progress import progress
from vqalab.runtime import resolve_precision, to_device, use_channels_last
from vqalab.training.distributed import (
    is_main_process,
    launched_processes,
    prepare_data_parallel,
)

log = logging.getLogger(__name__)

# Steps between two updates of the progress bar's loss: each reads the loss from the device.
LOSS_DISPLAY_STEPS = 50


@dataclass
class TrainResult:
    best_epoch: int
    best_val_accuracy: float
    epochs_run: int
    stop_reason: str
    train_time_s: float
    processes: int = 1
    global_batch_size: int = 0  # measured: the questions of the first optimiser step, over all processes
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainingRun:
    """What every epoch of a run uses: the model, its batches and what an optimiser step updates."""

    model: VQAModel  # the family's model: what is validated and checkpointed
    train_model: nn.Module  # what the training forward runs: the model, DDP-wrapped and/or compiled
    loader: Iterable[dict]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # the shuffling order's: saved with the state, so a resumed run draws the same batches
    device: torch.device
    amp_dtype: torch.dtype | None
    grad_clip: float | None
    channels_last: bool
    accelerator: object | None  # accelerate's Accelerator in a multi-process launch
    processes: int
    main: bool  # only the main process logs and saves the state


@dataclass
class EpochStats:
    train_loss: float
    samples_per_s: float
    global_batch_size: int


def trained_state(model: VQAModel) -> dict[str, torch.Tensor]:
    """A copy, on the CPU, of what training changes: the trainable parameters and the buffers
    (batch-norm statistics). A frozen encoder's weights stay out: they are the same in every epoch
    (a frozen-encoder resnet_bert: 0.7 M of 27 M parameters)."""
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in model.named_buffers()}
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items() if k in trainable or k in buffers}


def load_trained_state(model: VQAModel, state: dict[str, torch.Tensor]) -> None:
    """Put back what ``trained_state`` took (every key must be the model's)."""
    unexpected = model.load_state_dict(state, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"the saved training state holds weights this model lacks: {unexpected[:5]}")


@dataclass
class TrainingState:
    """Where a run stands after its last completed epoch. With the weights, optimiser, schedule and
    random states (``save``), it is all the next epoch depends on: a run resumed from it ends as an
    uninterrupted one does."""

    epoch: int = 0
    best_epoch: int = 0
    best_val_accuracy: float = -1.0  # below any accuracy: the first epoch is the best so far
    best_weights: dict[str, torch.Tensor] | None = None  # trained_state() of the best epoch
    start_val_accuracy: float | None = None  # the untrained model's, where it is a baseline (epoch 0)
    history: list[dict] = field(default_factory=list)
    stop_reason: str | None = None
    elapsed_s: float = 0.0

    @property
    def epochs_without_improvement(self) -> int:
        return self.epoch - self.best_epoch

    def record_start(self, run: TrainingRun, val_set: VQADataset, *, batch_size: int) -> None:
        """The untrained model as epoch 0: kept if no epoch beats it on validation (the model then
        predicts as the baseline it starts from, rather than worse)."""
        self.best_val_accuracy = validation_accuracy(run.model, val_set, batch_size=batch_size, device=run.device)
        self.start_val_accuracy = self.best_val_accuracy
        log.info("epoch 0 (the untrained model, as its baseline): val_accuracy %.5f", self.best_val_accuracy)
        self.best_weights = trained_state(run.model)

    def record_epoch(self, epoch: int, metrics: dict, model: VQAModel) -> None:
        self.epoch = epoch
        self.history.append({"epoch": epoch, **metrics})
        if metrics["val_accuracy"] > self.best_val_accuracy:
            self.best_epoch, self.best_val_accuracy = epoch, metrics["val_accuracy"]
            self.best_weights = trained_state(model)

    def save(self, path: Path, run: TrainingRun, *, fingerprint: dict | None) -> None:
        with atomic_path(path) as tmp:
            torch.save({
                "fingerprint": fingerprint, "model": trained_state(run.model),
                "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                "scaler": run.scaler.state_dict(), "generator": run.generator.get_state(),
                "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
                "python_rng": random.getstate(), "progress": vars(self),
            }, tmp)

    @classmethod
    def restore(cls, saved: dict, run: TrainingRun) -> TrainingState:
        """The state ``save`` wrote, with the weights, optimiser, schedule and random states put back."""
        load_trained_state(run.model, saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        run.scheduler.load_state_dict(saved["scheduler"])
        run.scaler.load_state_dict(saved["scaler"])
        run.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        np.random.set_state(saved["numpy_rng"])
        random.setstate(saved["python_rng"])
        return cls(**saved["progress"])


def validation_accuracy(model: VQAModel, val_set: VQADataset, *, batch_size: int, device: torch.device) -> float:
    outputs = predict_dataset(model, val_set, batch_size=batch_size, device=device, desc="validate")
    return accuracy([top[0][0] for top in outputs], [r.answer for r in val_set.records])


def fit(model: VQAModel, train_set: VQADataset, val_set: VQADataset, *, params: TrainParams,
        device: torch.device, seed: int, on_epoch_end: Callable[[int, dict], None] | None = None,
        state_path: Path | None = None, fingerprint: dict | None = None) -> TrainResult:
    """Train ``model`` in place and leave it holding the weights of its best validation epoch.

    With ``state_path``, everything the next epoch depends on is saved there after every epoch, and
    a run started with ``params.resume`` continues from it to an uninterrupted run's result. The
    state carries ``fingerprint`` (parameters, data, features, code): one made with another is not
    resumed - the run starts afresh, the log naming what changed. ``on_epoch_end`` is also called
    for the epochs a resumed run restores, so loggers see the whole history, and for epoch 0 (with
    its validation accuracy only) where the untrained model is a baseline that can be kept.

    Launched as several processes (``accelerate launch``), the model trains under DDP with the
    global batch ``params.batch_size`` split across them; every process validates on the whole
    validation split (same early-stopping decisions); only the main one reports and saves.
    """
    run = prepare_run(model, train_set, params=params, device=device, seed=seed)
    state = starting_state(state_path, run, resume=params.resume, fingerprint=fingerprint)
    report = on_epoch_end if run.main else None
    if state.epoch == 0 and model.starts_as_baseline:  # kept unless an epoch beats it on validation
        state.record_start(run, val_set, batch_size=2 * params.batch_size)
    if report and state.start_val_accuracy is not None:
        report(0, {"val_accuracy": state.start_val_accuracy})
    for past in state.history if report else ():
        report(past["epoch"], {k: v for k, v in past.items() if k != "epoch"})
    start, global_batch_size = time.perf_counter() - state.elapsed_s, 0
    while state.stop_reason is None and state.epoch < params.max_epochs:
        epoch = state.epoch + 1
        metrics, epoch_global_batch_size = train_and_validate(run, val_set, epoch=epoch, params=params, start=start)
        global_batch_size = global_batch_size or epoch_global_batch_size
        state.record_epoch(epoch, metrics, model)
        state.stop_reason = stop_reason(state, params)
        state.elapsed_s = time.perf_counter() - start
        if state_path is not None and run.main:
            state.save(state_path, run, fingerprint=fingerprint)
        if report:
            report(epoch, metrics)
    train_time = time.perf_counter() - start
    finish_run(run, state.best_weights)
    return TrainResult(best_epoch=state.best_epoch, best_val_accuracy=state.best_val_accuracy,
                       epochs_run=len(state.history), stop_reason=state.stop_reason or "max_epochs",
                       train_time_s=train_time, processes=run.processes, global_batch_size=global_batch_size,
                       history=state.history)


def prepare_run(model: VQAModel, train_set: VQADataset, *, params: TrainParams, device: torch.device,
                seed: int) -> TrainingRun:
    """The model on ``device`` (in channels_last where that is faster), its training batches,
    DDP in a multi-process launch, torch.compile with ``run.compile``, the optimiser and schedule;
    the model's training targets credit list answers' parts with ``train.answer_part_credit``."""
    model.credit_answer_parts(params.answer_part_credit)
    model.to(device)
    channels_last = use_channels_last(model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(seed)
    processes = launched_processes()
    loader = training_batches(model, train_set, batch_size=params.batch_size, generator=generator, device=device,
                              indexed=processes == 1)
    train_model, accelerator = model, None
    if processes > 1:
        accelerator, train_model, loader = prepare_data_parallel(model, loader, device=device,
                                                                  global_batch_size=params.batch_size)
        device = accelerator.device
    if params.compile:
        train_model = torch.compile(train_model)  # shares the model's parameters: checkpoints are unchanged
    amp_dtype = resolve_precision(params.precision, device)
    optimizer = build_optimizer(model, weight_decay=params.weight_decay, device=device)
    total_steps = len(loader) * params.max_epochs
    return TrainingRun(
        model=model, train_model=train_model, loader=loader, optimizer=optimizer,
        scheduler=linear_warmup_then_decay(optimizer, int(params.warmup_ratio * total_steps), total_steps),
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none.
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        generator=generator, device=device, amp_dtype=amp_dtype, grad_clip=params.grad_clip,
        channels_last=channels_last, accelerator=accelerator, processes=processes, main=is_main_process())


def linear_warmup_then_decay(optimizer: torch.optim.Optimizer, warmup_steps: int,
                              total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate rises linearly from 0 over ``warmup_steps``, then falls linearly to 0 at
    ``total_steps`` (transformers' linear schedule; written here because importing it from
    transformers also imports peft, 3 s at the start of every train stage)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def training_batches(model: VQAModel, train_set: VQADataset, *, batch_size: int, generator: torch.Generator,
                     device: torch.device, indexed: bool) -> Iterable[dict]:
    """Shuffled training batches. A fully cached set (``indexed``: one process) is gathered from
    feature tables held whole on ``device``; otherwise a DataLoader collates them, into pinned
    memory on CUDA so that ``to_device``'s copies run asynchronously."""
    if indexed and train_set.fully_cached():
        return IndexedBatches(train_set, batch_size=batch_size, shuffle=True, generator=generator, device=device,
                              by_image=model.batches_by_image)
    return DataLoader(train_set, batch_size=batch_size, shuffle=True, collate_fn=model.collate, generator=generator,
                      pin_memory=device.type == "cuda")


def build_optimizer(model: VQAModel, *, weight_decay: float, device: torch.device) -> torch.optim.AdamW:
    # Fused AdamW updates every parameter in one CUDA kernel instead of a few per tensor; elsewhere
    # PyTorch's default implementation is kept, so CPU runs give the same figures as before.
    return torch.optim.AdamW(model.param_groups(), weight_decay=weight_decay,
                             fused=True if device.type == "cuda" else None)


def starting_state(path: Path | None, run: TrainingRun, *, resume: bool, fingerprint: dict | None) -> TrainingState:
    """The saved state at ``path`` where ``resume`` is on and it was made with the same
    ``fingerprint``; otherwise a fresh state, and a saved one is deleted so no later run resumes it."""
    if path is None or not path.is_file():
        return TrainingState()
    if not resume:
        log.info("run.resume is off: starting afresh (discarding %s)", path)
        path.unlink(missing_ok=True)  # every process of a multi-process run gets here
        return TrainingState()
    saved = torch.load(path, map_location="cpu", weights_only=False)  # our own file: it holds RNG states
    changed = fingerprint_changes(saved.get("fingerprint"), fingerprint)
    if changed:
        log.warning("run.resume: %s was made with other inputs (%s): starting afresh", path, "; ".join(changed))
        path.unlink(missing_ok=True)
        return TrainingState()
    state = TrainingState.restore(saved, run)
    log.info("resuming after epoch %d from %s", state.epoch, path)
    return state


def train_and_validate(run: TrainingRun, val_set: VQADataset, *, epoch: int, params: TrainParams,
                       start: float) -> tuple[dict, int]:
    """Train epoch ``epoch`` and validate it: its metrics (``elapsed_s`` counts from ``start``) and
    the global batch size its first step measured."""
    stats = train_one_epoch(run, desc=f"epoch {epoch}/{params.max_epochs}")
    metrics = {
        "train_loss": stats.train_loss,
        "val_accuracy": validation_accuracy(run.model, val_set, batch_size=params.batch_size * 2, device=run.device),
        "lr": run.scheduler.get_last_lr()[0],
        "train_samples_per_s": stats.samples_per_s,
        "elapsed_s": time.perf_counter() - start,
    }
    log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in metrics.items()})
    return metrics, stats.global_batch_size


def train_one_epoch(run: TrainingRun, *, desc: str) -> EpochStats:
    """One pass over the training batches. The loss is summed on the device and read once, at the
    end: reading it every step (``loss.item()``) would make the host wait for the GPU every step.
    The sum is float64, so it equals the sum of the per-step losses as Python floats."""
    run.model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
    steps = samples = global_batch_size = 0
    start = time.perf_counter()
    bar = progress(run.loader, desc=desc, unit="batch", enabled=run.main)
    for batch in bar:
        loss_sum += train_step(run, to_device(batch, run.device, channels_last=run.channels_last))
        steps += 1
        questions = len(batch["labels"])
        global_batch_size = global_batch_size or measure_global_batch(run, questions)
        samples += questions * run.processes  # split_batches: every process holds an equal share
        if not bar.disable and steps % LOSS_DISPLAY_STEPS == 0:  # a bar is shown on a terminal only
            bar.set_postfix(loss=f"{loss_sum.item() / steps:.4f}")
    train_loss = loss_sum.item() / max(steps, 1)  # waits for the epoch's last step: the time below is all of it
    return EpochStats(train_loss=train_loss, samples_per_s=samples / (time.perf_counter() - start),
                      global_batch_size=global_batch_size)


def train_step(run: TrainingRun, batch: dict) -> torch.Tensor:
    """One optimiser step on ``batch``; returns its loss, detached, still on the device."""
    with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
        loss = run.train_model(batch).loss
    run.scaler.scale(loss).backward()
    if run.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def measure_global_batch(run: TrainingRun, questions: int) -> int:
    """The questions of one step over all processes (a host sync: called for the first step only)."""
    if run.accelerator is None:
        return questions
    return int(run.accelerator.reduce(torch.tensor(questions, device=run.device), "sum"))


def stop_reason(state: TrainingState, params: TrainParams) -> str | None:
    """Why training stops after the state's last epoch, or None to go on (``max_epochs`` aside)."""
    if params.target_val_accuracy is not None and state.history[-1]["val_accuracy"] >= params.target_val_accuracy:
        return "target_val_accuracy"
    if state.epochs_without_improvement >= params.patience:
        return "early_stopping"
    return None


def finish_run(run: TrainingRun, best_weights: dict[str, torch.Tensor]) -> None:
    """Leave the model with its best epoch's weights, in the default memory format (safetensors,
    which checkpoints use, saves contiguous tensors only)."""
    load_trained_state(run.model, best_weights)
    if run.channels_last:
        run.model.to(memory_format=torch.contiguous_format)


def fingerprint_changes(saved: dict | None, current: dict | None) -> list[str]:
    """What differs between two fingerprints, as ``name: old -> new`` (nested mappings flattened)."""
    old, new = flatten(saved or {}), flatten(current or {})
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key)]
