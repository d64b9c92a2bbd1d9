"""Stage evaluate: predict the test split, write the predictions file and the metrics JSON.

The metrics file (``--metrics``, what ``dvc metrics diff`` and ``dvc exp show`` read) holds the
headline figures only; the per-bucket detail (accuracy by answer frequency and question type, and
every prediction mode's full figures) goes to ``--details``, which the report reads. A family with
several prediction modes (qwen2vl: free generation and candidate ranking) is scored in each; the
first mode gives the headline figures, the others their ``accuracy_<mode>``.
"""

import resource
from pathlib import Path

import torch

from vqalab.config import StageParams
from vqalab.data.dataset import ProcessedData
from vqalab.data.registry import data_setting, dataset_config
from vqalab.data.features import CachedFeatures
from vqalab.evaluation.blind import blind_baseline
from vqalab.evaluation.metrics import exact_match
from vqalab.harness import evaluate_checkpoint
from vqalab.io import write_json, write_jsonl
from vqalab.stage import run_stage, stage_parser
from vqalab.training.device import resolve_device

# Figures per bucket: a column each in `dvc exp show`, so they live in the details file.
DETAIL_KEYS = ("by_frequency", "by_question_type")


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="evaluate")
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder of the train stage")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--features", type=Path, required=True, help="the features stage's folder (cached frozen-encoder outputs)")
    parser.add_argument("--predictions", type=Path, required=True, help="JSONL file for the test predictions")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON file for the headline test metrics")
    parser.add_argument("--details", type=Path, required=True, help="JSON file for the per-bucket and per-mode detail")
    args = parser.parse_args(argv)
    params = StageParams.read(args.params)
    device = resolve_device(params.train.device)
    data = ProcessedData.load(args.data)
    evaluation = evaluate_checkpoint(args.model, data, CachedFeatures.load(args.features), device=device,
                                     batch_size=params.evaluate.batch_size, sbert_model=params.sbert_model,
                                     features_where=args.features)
    model, checkpoint, test = evaluation.model, evaluation.checkpoint, evaluation.test
    modes, outputs = evaluation.modes, evaluation.outputs
    primary = model.prediction_modes[0]
    # The question-only baseline of the same data: how much the image added.
    blind = blind_baseline(data.split("train").records, data.split("val").records, test.records,
                           answers=data.vocab.answers, sbert_model=params.sbert_model)
    for mode in modes.values():
        mode["image_gain"] = mode["accuracy"] - blind["blind_accuracy"]
    memory = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}  # Linux: KiB
    if device.type == "cuda":
        memory["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)

    def prediction_row(i, record):
        top = outputs[primary][i][0]
        row = {"id": record.id, "question": record.question, "gold": record.answer, "prediction": top[0],
               "score": round(top[1], 6), "answer_type": record.answer_type,
               "correct": exact_match([top[0]], [record.answer])[0]}
        for mode in model.prediction_modes[1:]:
            row[f"prediction_{mode}"] = outputs[mode][i][0][0]
        return row

    write_jsonl(args.predictions, (prediction_row(i, r) for i, r in enumerate(test.records)))
    headline = {k: v for k, v in modes[primary].items() if k not in DETAIL_KEYS}
    write_json(args.details, {**{k: modes[primary][k] for k in DETAIL_KEYS if k in modes[primary]},
                              **({"modes": modes} if len(modes) > 1 else {})})
    write_json(args.metrics, {
        "dataset": checkpoint["dataset"],
        "data_setting": data_setting(dataset_config(params.dataset, params.section("dataset_config")),
                                     max_images_per_split=params.download.max_images_per_split),
        "model": checkpoint["family"],
        "profile": checkpoint["profile"],
        "seed": checkpoint["seed"],
        **headline,
        **{f"accuracy_{mode}": figures["accuracy"] for mode, figures in modes.items() if mode != primary},
        **blind,
        **memory,
        "sbert_model": params.sbert_model,
        "train_time_s": round(checkpoint["train_time_s"], 2),
        "best_epoch": checkpoint["best_epoch"],
        "trainable_params": checkpoint["trainable_params"],
        "total_params": checkpoint["total_params"],
        "prediction_mode": primary,
    })


if __name__ == "__main__":
    run_stage(main)
