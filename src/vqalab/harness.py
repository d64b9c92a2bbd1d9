"""The two steps every consumer of a study shares: building a model from parameters and data, and
evaluating a saved checkpoint on a test split.

The train and evaluate stages call these, and so does every benchmark (``bench/``): a benchmark
strategy is a parameter override (``vqalab.params.load_params(..., overrides=...)``), never a model
assembled by hand, so what it measures is what the pipeline runs.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from vqalab.data.dataset import ProcessedData, VQADataset
from vqalab.data.features import CachedFeatures
from vqalab.evaluation.metrics import score_predictions
from vqalab.evaluation.predict import predict_dataset
from vqalab.models.base import VQAModel
from vqalab.models.checkpoint import load_checkpoint
from vqalab.models.registry import get_family
from vqalab.training.device import seed_everything


def build_model(params, data: ProcessedData, *, where: str | Path | None = None) -> VQAModel:
    """A new model of ``params.model`` (config ``params.family``) for ``data``'s answers, its
    random parts drawn from ``params.seed`` (``vqalab.params.Params``); ``where`` names the data in
    the message when its image size does not fit."""
    config = params.family
    if data.image_size != config.image_size:
        raise ValueError(f"{where or 'the processed data'} holds {data.image_size}px images but "
                         f"{params.model}.{params.profile}.image_size is {config.image_size}: rerun the preprocess "
                         f"stage (dvc repro)")
    seed_everything(params.seed)
    return get_family(params.model).model_class.build(
        config, data.vocab.answers, train_texts=[r.question for r in data.records if r.split == "train"])


@dataclass
class Evaluation:
    model: VQAModel
    checkpoint: dict  # the checkpoint's info (checkpoint.json)
    test: VQADataset
    outputs: dict[str, list[list[tuple[str, float]]]]  # per prediction mode, per test item: top answers
    modes: dict[str, dict]  # per prediction mode: scores and timing
    shuffled_answers: list[str]  # the headline mode's answers with the test images shuffled among the questions

    @property
    def primary(self) -> str:
        return self.model.prediction_modes[0]


def evaluate_checkpoint(model_dir: str | Path, data: ProcessedData, features: CachedFeatures, *,
                        device: torch.device, batch_size: int, sbert_model: str,
                        features_where: str | Path | None = None) -> Evaluation:
    """Load the checkpoint in ``model_dir``, predict ``data``'s test split in every prediction mode
    of its family and score each (``vqalab.evaluation.metrics.score_predictions``, with timing);
    predict it again in the headline mode with the images shuffled among the questions (a fixed
    permutation), to see how much the answers depend on the image. On CUDA, the peak-memory counter
    is reset first, so it reads the evaluation's own peak after."""
    model, checkpoint = load_checkpoint(model_dir)
    model.to(device)
    features.check(model, where=features_where or "the cached features")
    test = data.split("test", features)
    train_answer_counts = Counter(r.answer for r in data.records if r.split == "train")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    modes, outputs = {}, {}
    for mode in model.prediction_modes:
        start = time.perf_counter()
        outputs[mode] = predict_dataset(model, test, batch_size=batch_size, device=device, mode=mode)
        elapsed = time.perf_counter() - start
        modes[mode] = {
            **score_predictions([top[0][0] for top in outputs[mode]], test.records,
                                train_answer_counts=train_answer_counts, sbert_model=sbert_model),
            "eval_time_s": round(elapsed, 2),
            "test_ms_per_question": round(1000 * elapsed / len(test), 3),
        }
    shuffled = predict_dataset(model, test.with_shuffled_images(), batch_size=batch_size, device=device,
                               mode=model.prediction_modes[0], desc="predict, images shuffled")
    return Evaluation(model=model, checkpoint=checkpoint, test=test, outputs=outputs, modes=modes,
                      shuffled_answers=[top[0][0] for top in shuffled])
