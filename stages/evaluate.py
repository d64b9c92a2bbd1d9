"""Stage evaluate: predict the test split, score it, and write what DVC and the report read.

``--metrics`` (metrics/eval.json) holds the quality figures a reader compares across experiments,
``--cost`` (metrics/cost.json) what the run cost, ``--plots`` accuracy by answer type and by answer
frequency beside the blind baseline (data files ``dvc plots diff`` overlays), ``--details`` what the
run is and the report's other figures (``vqalab.evaluation.outputs``), ``--predictions`` one line per
test question. A family with several prediction modes (qwen2vl: free generation and candidate
ranking) is scored in each; the first mode gives the headline figures, the others their
``accuracy_<mode>``.
"""

import resource
from collections import Counter
from pathlib import Path

import torch

from vqalab.data.dataset import ProcessedData
from vqalab.data.features import CachedFeatures
from vqalab.evaluation.blind import blind_baseline
from vqalab.evaluation.metrics import accuracy_figures, exact_match
from vqalab.evaluation.outputs import plot_rows, quality_figures
from vqalab.harness import evaluate_checkpoint
from vqalab.io import write_json, write_jsonl
from vqalab.params import Params
from vqalab.stage import run_stage, stage_parser
from vqalab.training.device import resolve_device


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="evaluate")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder of the train stage")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--features", type=Path, required=True, help="the features stage's folder (cached frozen-encoder outputs)")
    parser.add_argument("--predictions", type=Path, required=True, help="JSONL file for the test predictions")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON file for the quality figures")
    parser.add_argument("--cost", type=Path, required=True, help="JSON file for the cost figures")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the plots' data files")
    parser.add_argument("--details", type=Path, required=True, help="JSON file for the run's names, counts and detail")
    args = parser.parse_args(argv)
    params = Params.read(args.params, stage="evaluate")
    device = resolve_device(params.train.device)
    data = ProcessedData.load(args.data)
    evaluation = evaluate_checkpoint(args.model, data, CachedFeatures.load(args.features), device=device,
                                     batch_size=params.evaluate.batch_size, sbert_model=params.sbert_model,
                                     features_where=args.features)
    model, checkpoint, test = evaluation.model, evaluation.checkpoint, evaluation.test
    primary = evaluation.primary
    scores = evaluation.modes[primary]
    # The question-only baseline of the same data: how much the image added.
    blind_answers, blind_classifier = blind_baseline(data.split("train").records, data.split("val").records, test.records,
                                            answers=data.vocab.answers, sbert_model=params.sbert_model)
    blind = accuracy_figures(blind_answers, test.records,
                             train_answer_counts=Counter(r.answer for r in data.records if r.split == "train"))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    def prediction_row(i, record):
        top = evaluation.outputs[primary][i][0]
        row = {"id": record.id, "question": record.question, "gold": record.answer, "prediction": top[0],
               "score": round(top[1], 6), "answer_type": record.answer_type,
               "correct": exact_match([top[0]], [record.answer])[0], "blind_prediction": blind_answers[i]}
        for mode in model.prediction_modes[1:]:
            row[f"prediction_{mode}"] = evaluation.outputs[mode][i][0][0]
        return row

    write_jsonl(args.predictions, (prediction_row(i, r) for i, r in enumerate(test.records)))
    for name, rows in plot_rows(scores, blind).items():
        write_json(args.plots / f"{name}.json", rows)
    write_json(args.metrics, quality_figures(
        scores, blind, answers=[top[0][0] for top in evaluation.outputs[primary]], blind_answers=blind_answers,
        shuffled_answers=evaluation.shuffled_answers, golds=[r.answer for r in test.records],
        other_modes={m: s for m, s in evaluation.modes.items() if m != primary}))
    write_json(args.cost, {
        "train_time_s": round(checkpoint["train_time_s"], 2),
        "train_samples_per_s": round(checkpoint["train_samples_per_s"], 1),
        "test_ms_per_question": scores["test_ms_per_question"],
        "peak_rss_mb": round(max(peak_rss_mb, checkpoint["peak_rss_mb"]), 1),
        **({"peak_gpu_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)} if device.type == "cuda" else {}),
        "trainable_params": checkpoint["trainable_params"],
        "total_params": checkpoint["total_params"],
    })
    write_json(args.details, {
        "dataset": checkpoint["dataset"],
        "model": checkpoint["family"],
        "profile": checkpoint["profile"],
        "seed": checkpoint["seed"],
        "best_epoch": checkpoint["best_epoch"],
        "prediction_mode": primary,
        "sbert_model": params.sbert_model,
        "blind_C": blind_classifier.C,
        "blind_val_accuracy": blind_classifier.val_accuracy,
        **{key: scores[key] for key in ("n", "n_closed", "n_open", "by_question_type", "wups_unavailable")
           if key in scores},
        "eval_time_s": scores["eval_time_s"],
        **({"modes": evaluation.modes} if len(evaluation.modes) > 1 else {}),
    })


if __name__ == "__main__":
    run_stage(main)
