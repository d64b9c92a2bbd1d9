"""Stage evaluate: predict the test split, score it, and write what DVC and the report read
(``vqalab.pipeline.evaluate``).

``--metrics`` (metrics/eval.json) holds the quality figures a reader compares across experiments,
``--cost`` (metrics/cost.json) what the run cost, ``--plots`` accuracy by answer type and by answer
frequency beside the blind baseline (data files ``dvc plots diff`` overlays), ``--details`` what the
run is and the report's other figures, ``--predictions`` one line per test question.
"""

from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder of the train stage")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--features", type=Path, required=True, help="the features stage's folder (cached frozen-encoder outputs)")
    parser.add_argument("--blind", type=Path, required=True, help="the blind stage's folder")
    parser.add_argument("--train-cost", type=Path, required=True, help="the train stage's cost figures (JSON)")
    parser.add_argument("--predictions", type=Path, required=True, help="JSONL file for the test predictions")
    parser.add_argument("--metrics", type=Path, required=True, help="JSON file for the quality figures")
    parser.add_argument("--cost", type=Path, required=True, help="JSON file for the cost figures")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the plots' data files")
    parser.add_argument("--details", type=Path, required=True, help="JSON file for the run's names, counts and detail")
    args = parser.parse_args(argv)
    params = load_params(args.params, stage="evaluate")
    from vqalab.models.sources import check_pretrained_sources

    check_pretrained_sources({"evaluate.sbert_model": params.sbert_model})
    from vqalab.data.dataset import ProcessedData
    from vqalab.data.features import CachedFeatures
    from vqalab.evaluation.blind import BlindBaseline
    from vqalab.io import read_json, write_json, write_jsonl
    from vqalab.pipeline.evaluate import evaluate_model
    from vqalab.runtime import resolve_device

    evaluation = evaluate_model(params, args.model, ProcessedData.load(args.data), CachedFeatures.load(args.features),
                                BlindBaseline.load(args.blind), train_cost=read_json(args.train_cost),
                                device=resolve_device(params.train.device),
                                features_where=args.features)
    write_jsonl(args.predictions, evaluation.predictions)
    for name, rows in evaluation.plots.items():
        write_json(args.plots / f"{name}.json", rows)
    write_json(args.metrics, evaluation.quality)
    write_json(args.cost, evaluation.cost)
    write_json(args.details, evaluation.details)


if __name__ == "__main__":
    run_stage(main)
