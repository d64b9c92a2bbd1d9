"""Stage evaluate: predict the test split, write the predictions file and the metrics JSON."""

import time
from pathlib import Path

from vqalab.config import load_params
from vqalab.data.dataset import ProcessedData
from vqalab.evaluation.metrics import accuracy_by_answer_type, exact_match, sbert_similarity
from vqalab.evaluation.predict import predict_dataset
from vqalab.io import write_json, write_jsonl
from vqalab.models.checkpoint import load_checkpoint
from vqalab.stage import stage_parser
from vqalab.training.device import resolve_device


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder of the train stage")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--predictions", type=Path, required=True, help="JSONL file for the test predictions")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON file for the test metrics")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    device = resolve_device(params.train.device)
    model, checkpoint = load_checkpoint(args.model)
    model.to(device)
    test = ProcessedData.load(args.data).split("test")

    start = time.perf_counter()
    outputs = predict_dataset(model, test, batch_size=params.evaluate.batch_size, device=device)
    eval_time = time.perf_counter() - start
    predictions = [top[0][0] for top in outputs]
    golds = [r.answer for r in test.records]
    answer_types = [r.answer_type for r in test.records]

    correct = exact_match(predictions, golds)
    write_jsonl(args.predictions, (
        {"id": r.id, "question": r.question, "gold": r.answer, "prediction": p, "score": round(top[0][1], 6),
         "answer_type": r.answer_type, "correct": c}
        for r, p, top, c in zip(test.records, predictions, outputs, correct)
    ))
    write_json(args.metrics, {
        "dataset": checkpoint["dataset"],
        "model": checkpoint["family"],
        "profile": checkpoint["profile"],
        **accuracy_by_answer_type(predictions, golds, answer_types),
        "sbert_similarity": sbert_similarity(predictions, golds, model_name=params.sbert_model),
        "sbert_model": params.sbert_model,
        "train_time_s": round(checkpoint["train_time_s"], 2),
        "eval_time_s": round(eval_time, 2),
        "best_epoch": checkpoint["best_epoch"],
        "trainable_params": checkpoint["trainable_params"],
        "total_params": checkpoint["total_params"],
    })


if __name__ == "__main__":
    main()
