"""The one training loop, for every family.

Early stopping and model selection use validation accuracy only; the test split is never seen here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from vqalab.config import TrainParams
from vqalab.data.dataset import IndexedBatches, VQADataset
from vqalab.evaluation.metrics import accuracy
from vqalab.evaluation.predict import predict_dataset
from vqalab.io import atomic_path
from vqalab.models.base import VQAModel
from vqalab.progress import progress
from vqalab.training.device import resolve_precision, to_device
from vqalab.training.distributed import (
    is_main_process,
    launched_processes,
    prepare_data_parallel,
)

log = logging.getLogger(__name__)


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


def validation_accuracy(model: VQAModel, val_set: VQADataset, *, batch_size: int, device: torch.device) -> float:
    outputs = predict_dataset(model, val_set, batch_size=batch_size, device=device, desc="validate")
    return accuracy([top[0][0] for top in outputs], [r.answer for r in val_set.records])


def fit(model: VQAModel, train_set: VQADataset, val_set: VQADataset, *, params: TrainParams,
        device: torch.device, seed: int, on_epoch_end: Callable[[int, dict], None] | None = None,
        state_path: Path | None = None, fingerprint: dict | None = None) -> TrainResult:
    """Train ``model`` in place and leave it holding the weights of its best validation epoch.

    With ``state_path``, everything the next epoch depends on (weights, optimiser, schedule, random
    states, history) is saved there after every epoch, and a run started with ``params.resume``
    continues from it: the result equals an uninterrupted run's. The state carries ``fingerprint``
    (what the run depends on: parameters, data, features, code); a state made with another one is
    not resumed - the run starts afresh and the log names what changed. ``on_epoch_end`` is also
    called for the epochs a resumed run restores, so loggers see the whole history.

    Launched as several processes (``accelerate launch``), the model trains under DDP with the
    global batch ``params.batch_size`` split across them; every process validates on the whole
    validation split, so all take the same early-stopping decisions, and only the main one calls
    ``on_epoch_end`` and saves the state file.
    """
    model.to(device)
    amp_dtype = resolve_precision(params.precision, device)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    generator = torch.Generator().manual_seed(seed)
    processes, main = launched_processes(), is_main_process()
    if train_set.fully_cached() and processes == 1:
        loader = IndexedBatches(train_set, batch_size=params.batch_size, shuffle=True, generator=generator,
                                device=device)
    else:
        loader = DataLoader(train_set, batch_size=params.batch_size, shuffle=True, collate_fn=model.collate,
                            generator=generator)
    train_model, accelerator = model, None
    if processes > 1:
        accelerator, train_model, loader = prepare_data_parallel(model, loader, device=device,
                                                                  global_batch_size=params.batch_size)
        device = accelerator.device
    optimizer = torch.optim.AdamW(model.param_groups(), weight_decay=params.weight_decay)
    total_steps = len(loader) * params.max_epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(params.warmup_ratio * total_steps), total_steps)

    progress_state = {"epoch": 0, "best_state": None, "best_epoch": 0, "best_acc": -1.0, "history": [],
                      "stop_reason": None, "elapsed_s": 0.0}
    if state_path is not None and state_path.is_file():
        changed = params.resume and fingerprint_changes(torch.load(state_path, map_location="cpu", weights_only=False)
                                                        .get("fingerprint"), fingerprint)
        if changed:
            log.warning("train.resume: %s was made with other inputs (%s): starting afresh", state_path,
                        "; ".join(changed))
            state_path.unlink(missing_ok=True)
        elif params.resume:
            progress_state = load_training_state(state_path, model, optimizer, scheduler, scaler, generator)
            log.info("resuming after epoch %d from %s", progress_state["epoch"], state_path)
            for past in progress_state["history"]:
                if on_epoch_end is not None and main:
                    on_epoch_end(past["epoch"], {k: v for k, v in past.items() if k != "epoch"})
        else:
            log.info("train.resume is off: starting afresh (discarding %s)", state_path)
            state_path.unlink(missing_ok=True)  # every process of a multi-process run gets here
    history = progress_state["history"]
    best_state, best_epoch, best_acc = progress_state["best_state"], progress_state["best_epoch"], progress_state["best_acc"]
    stop_reason = progress_state["stop_reason"]
    global_batch_size = 0
    start = time.perf_counter() - progress_state["elapsed_s"]
    for epoch in range(progress_state["epoch"] + 1, params.max_epochs + 1):
        if stop_reason is not None:
            break
        model.train()
        loss_sum, loss_batches, samples = 0.0, 0, 0
        epoch_start = time.perf_counter()
        bar = progress(loader, desc=f"epoch {epoch}/{params.max_epochs}", unit="batch", enabled=main)
        for batch in bar:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                output = train_model(to_device(batch, device))
            scaler.scale(output.loss).backward()
            if params.grad_clip is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(model.parameters(), params.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += output.loss.item()
            loss_batches += 1
            batch_questions = len(batch["labels"])
            if not global_batch_size:
                global_batch_size = (int(accelerator.reduce(torch.tensor(batch_questions, device=device), "sum"))
                                     if accelerator else batch_questions)
            samples += batch_questions * processes  # split_batches: every process holds an equal share
            bar.set_postfix(loss=f"{loss_sum / loss_batches:.4f}")
        train_samples_per_s = samples / (time.perf_counter() - epoch_start)
        val_acc = validation_accuracy(model, val_set, batch_size=params.batch_size * 2, device=device)
        metrics = {
            "train_loss": loss_sum / max(loss_batches, 1),
            "val_accuracy": val_acc,
            "lr": scheduler.get_last_lr()[0],
            "train_samples_per_s": train_samples_per_s,
            "elapsed_s": time.perf_counter() - start,
        }
        history.append({"epoch": epoch, **metrics})
        log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in metrics.items()})
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            # What the family saves (LoRA adapters, not a frozen base), on the CPU: a copy per better epoch.
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.checkpoint_state().items()}
        if params.target_val_accuracy is not None and val_acc >= params.target_val_accuracy:
            stop_reason = "target_val_accuracy"
        elif epoch - best_epoch >= params.patience:
            stop_reason = "early_stopping"
        if state_path is not None and main:
            save_training_state(state_path, model, optimizer, scheduler, scaler, generator, {
                "epoch": epoch, "best_state": best_state, "best_epoch": best_epoch, "best_acc": best_acc,
                "history": history, "stop_reason": stop_reason, "elapsed_s": time.perf_counter() - start},
                fingerprint=fingerprint)
        if on_epoch_end is not None and main:
            on_epoch_end(epoch, metrics)
    train_time = time.perf_counter() - start
    model.load_checkpoint_state(best_state)
    return TrainResult(best_epoch=best_epoch, best_val_accuracy=best_acc, epochs_run=len(history),
                       stop_reason=stop_reason or "max_epochs", train_time_s=train_time, processes=processes,
                       global_batch_size=global_batch_size, history=history)


def fingerprint_changes(saved: dict | None, current: dict | None, prefix: str = "") -> list[str]:
    """What differs between two fingerprints, as ``name: old -> new`` (nested mappings flattened)."""
    saved, current = saved or {}, current or {}
    changes = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += fingerprint_changes(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return changes


def save_training_state(path: Path, model, optimizer, scheduler, scaler, generator, progress: dict, *,
                        fingerprint: dict | None = None) -> None:
    with atomic_path(path) as tmp:
        torch.save({
            "fingerprint": fingerprint,
            "model": model.checkpoint_state(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(), "python_rng": random.getstate(), "progress": progress,
        }, tmp)


def load_training_state(path: Path, model, optimizer, scheduler, scaler, generator) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=False)  # our own file: it holds RNG states
    model.load_checkpoint_state(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    return state["progress"]
