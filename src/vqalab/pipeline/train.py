"""Step train: build the chosen family, start it from the blind baseline where it has a question
prior, and train it with early stopping on validation (``vqalab.training.loop.fit``); the kept
model's validation figures for its model card (``vqalab.models.card``)."""

from __future__ import annotations

import dataclasses
import resource
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vqalab.data.dataset import ProcessedData
from vqalab.data.features import CachedFeatures
from vqalab.config import RUN_CONTROLS
from vqalab.evaluation.blind import BlindBaseline
from vqalab.evaluation.metrics import accuracy, exact_match
from vqalab.evaluation.predict import predict_dataset
from vqalab.evaluation.stats import image_gain_test, mean_interval
from vqalab.models.base import VQAModel
from vqalab.models.registry import build_model
from vqalab.params import Params
from vqalab.runtime import library_versions
from vqalab.training.loop import TrainResult, fit


@dataclass
class TrainedModel:
    model: VQAModel  # holding its best validation epoch's weights
    result: TrainResult
    # What its checkpoint records beside the weights (checkpoint.json): the same for the same
    # training on the same machine, so the folder is too.
    info: dict
    cost: dict  # what the run cost (time, throughput, memory): metrics, not the model's


def train_model(params: Params, data: ProcessedData, features: CachedFeatures, blind: BlindBaseline, *,
                device: torch.device, on_epoch_end: Callable[[int, dict], None] | None = None,
                state_path: Path | None = None, fingerprint: dict | None = None,
                where: str | Path = "the processed data") -> TrainedModel:
    """Train a new model of the chosen family on ``data`` (``features``: the features step's cache,
    ``blind``: the blind step's baseline). ``state_path``, ``fingerprint`` and ``on_epoch_end`` go to
    ``fit`` (saving and resuming the training state, logging each epoch); ``where`` names the data
    in messages."""
    model = build_model(params, data, where=where)
    features.check(model, where=where)
    train_set, val_set = data.split("train", features), data.split("val", features)
    # Closed-form parts (a question prior, candidate answers) come from train, chosen on validation.
    prepared = model.prepare_for_training(train_set, val_set, blind=blind)
    result = fit(model, train_set, val_set, params=params.train, device=device, seed=params.seed,
                 on_epoch_end=on_epoch_end, state_path=state_path, fingerprint=fingerprint)
    summary = dataclasses.asdict(result)
    history = summary.pop("history")  # the curves live in the train stage's DVCLive folder
    cost = {
        "train_time_s": summary.pop("train_time_s"),
        "train_samples_per_s": statistics.fmean(e["train_samples_per_s"] for e in history) if history else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        **({"peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20} if device.type == "cuda" else {}),
    }
    info = {
        "dataset": params.dataset,
        "profile": params.profile,
        "seed": params.seed,
        "device": str(device),
        "precision": params.train.precision,
        "train_params": {k: v for k, v in dataclasses.asdict(params.train).items() if k not in RUN_CONTROLS},
        "cached_features": sorted(features.fingerprints),
        "versions": library_versions(),
        "n_train": len(train_set),
        "n_val": len(val_set),
        **summary,
        **prepared,
        **model.parameter_counts(),
    }
    return TrainedModel(model=model, result=result, info=info, cost=cost)


def validation_figures(model: VQAModel, data: ProcessedData, features: CachedFeatures, blind: BlindBaseline, *,
                       device: torch.device, batch_size: int) -> dict:
    """The kept model's validation accuracy beside the blind baseline's on the same questions, with
    95% intervals over them (the image gain's paired), as the evaluate stage gives the test's."""
    val_set = data.split("val", features)
    answers = [top[0][0] for top in predict_dataset(model, val_set, batch_size=batch_size, device=device,
                                                    desc="predict validation")]
    golds = [r.answer for r in val_set.records]
    blind_answers = blind.answers_to(val_set.records)
    gain = image_gain_test(answers, blind_answers, golds)
    return {"n": len(golds), "accuracy": accuracy(answers, golds),
            "accuracy_ci95": list(mean_interval(exact_match(answers, golds))),
            "blind_accuracy": accuracy(blind_answers, golds), "image_gain": gain.difference,
            "image_gain_ci95": [gain.low, gain.high]}


def best_epoch_summary(result: TrainResult) -> dict:
    """The kept epoch's validation accuracy and training loss (epoch 0, the untrained model, has no
    loss): what a run's metrics summary shows, not its last epoch's."""
    summary = {"val_accuracy": result.best_val_accuracy}
    kept = [e for e in result.history if e["epoch"] == result.best_epoch]
    if kept:
        summary["train_loss"] = kept[0]["train_loss"]
    return summary
