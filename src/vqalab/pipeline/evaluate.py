"""Step evaluate: predict the test split with a trained checkpoint, score it, and assemble what the
evaluate stage writes (``vqalab.evaluation.scores``: quality, cost, plot data, details)."""

from __future__ import annotations

import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from vqalab.data.dataset import ProcessedData
from vqalab.data.features import CachedFeatures
from vqalab.evaluation.blind import BlindBaseline
from vqalab.evaluation.metrics import accuracy_figures, exact_match
from vqalab.evaluation.predict import predict_dataset
from vqalab.evaluation.scores import plot_rows, quality_figures, score_predictions
from vqalab.evaluation.stats import image_gain_test
from vqalab.models.checkpoint import load_checkpoint
from vqalab.params import Params
from vqalab.runtime import machine


@dataclass
class Evaluation:
    quality: dict  # metrics/eval.json
    cost: dict  # metrics/cost.json
    plots: dict[str, list[dict]]  # metrics/plots/<name>.json
    details: dict  # metrics/eval_details.json
    predictions: list[dict]  # metrics/predictions.jsonl: one row per test question


def evaluate_model(params: Params, model_dir: str | Path, data: ProcessedData, features: CachedFeatures,
                   blind: BlindBaseline, *, train_cost: dict, device: torch.device,
                   features_where: str | Path = "the cached features") -> Evaluation:
    """Load the checkpoint in ``model_dir`` and predict ``data``'s test split in every prediction mode
    of its family (the first gives the headline figures, the others their ``accuracy_<mode>``), and
    again in the headline mode with the images shuffled among the questions (a fixed permutation),
    to see how much the answers depend on the image; score each beside the blind baseline's answers.
    ``train_cost`` is what the train stage measured (its time, throughput and memory).
    On CUDA, the peak-memory counter is reset first, so it reads the evaluation's own peak after."""
    model, checkpoint = load_checkpoint(model_dir)
    model.to(device)
    features.check(model, where=features_where)
    test = data.split("test", features)
    golds = [r.answer for r in test.records]
    train_answer_counts = Counter(r.answer for r in data.records if r.split == "train")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    modes, outputs = {}, {}
    for mode in model.prediction_modes:
        start = time.perf_counter()
        outputs[mode] = predict_dataset(model, test, batch_size=params.evaluate.batch_size, device=device, mode=mode)
        elapsed = time.perf_counter() - start
        modes[mode] = {**score_predictions([top[0][0] for top in outputs[mode]], test.records,
                                           train_answer_counts=train_answer_counts, sbert_model=params.sbert_model),
                       "eval_time_s": round(elapsed, 2), "test_ms_per_question": round(1000 * elapsed / len(test), 3)}
    primary = model.prediction_modes[0]
    answers = [top[0][0] for top in outputs[primary]]
    shuffled = [top[0][0] for top in predict_dataset(model, test.with_shuffled_images(), device=device, mode=primary,
                                                     batch_size=params.evaluate.batch_size, desc="predict, images shuffled")]
    blind_answers = blind.answers_to(test.records)
    blind_scores = accuracy_figures(blind_answers, test.records, train_answer_counts=train_answer_counts)
    scores = modes[primary]
    image_gain = image_gain_test(answers, blind_answers, golds)
    cost = {
        "train_time_s": round(train_cost["train_time_s"], 2),
        "train_samples_per_s": round(train_cost["train_samples_per_s"], 1),
        "test_ms_per_question": scores["test_ms_per_question"],
        "peak_rss_mb": round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
                                 train_cost["peak_rss_mb"]), 1),
        **({"train_peak_gpu_mb": round(train_cost["peak_gpu_mb"], 1)} if "peak_gpu_mb" in train_cost else {}),
        "checkpoint_mb": round(train_cost["checkpoint_mb"], 2),
        **({"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)} if device.type == "cuda" else {}),
        "trainable_params": checkpoint["trainable_params"],
        "total_params": checkpoint["total_params"],
        # Strings: `dvc exp show` shows them where they differ, `dvc metrics diff` leaves them out of its changes.
        **machine(device),
    }
    details = {
        "dataset": checkpoint["dataset"],
        "model": checkpoint["family"],
        "profile": checkpoint["profile"],
        "seed": checkpoint["seed"],
        "best_epoch": checkpoint["best_epoch"],
        "prediction_mode": primary,
        "sbert_model": params.sbert_model,
        "blind_C": blind.classifier.C,
        "blind_val_accuracy": blind.classifier.val_accuracy,
        # The test of image_gain_ci95 in eval.json: a p-value is no figure to compare across runs.
        "image_gain_p": image_gain.p_value,
        **{key: scores[key] for key in ("n", "n_closed", "n_open", "by_question_type", "wups_unavailable")
           if key in scores},
        "eval_time_s": scores["eval_time_s"],
        **({"modes": modes} if len(modes) > 1 else {}),
    }

    def prediction_row(i: int, record) -> dict:
        answer, score = outputs[primary][i][0]
        row = {"id": record.id, "question": record.question, "gold": record.answer, "prediction": answer,
               "score": round(score, 6), "answer_type": record.answer_type,
               "correct": exact_match([answer], [record.answer])[0], "blind_prediction": blind_answers[i],
               "shuffled_image_prediction": shuffled[i]}
        for mode in model.prediction_modes[1:]:
            row[f"prediction_{mode}"] = outputs[mode][i][0][0]
        return row

    return Evaluation(
        quality=quality_figures(scores, blind_scores, answers=answers, image_gain=image_gain,
                                shuffled_answers=shuffled, golds=golds,
                                other_modes={m: s for m, s in modes.items() if m != primary}),
        cost=cost, plots=plot_rows(scores, blind_scores), details=details,
        predictions=[prediction_row(i, r) for i, r in enumerate(test.records)])
