"""Stage report: metrics/report.md, PNG plots and the HTML error gallery from the earlier stages' outputs."""

from pathlib import Path

from vqalab.config import StageParams
from vqalab.data.dataset import ProcessedData
from vqalab.io import atomic_path, read_json, read_jsonl
from vqalab.report.gallery import write_gallery
from vqalab.report.report import FREQUENCY_ORDER, plot_accuracy_bars, plot_training_curves, read_curves, render_report
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="report")
    parser.add_argument("--metrics", type=Path, required=True, help="the evaluate stage's metrics JSON")
    parser.add_argument("--details", type=Path, required=True, help="the evaluate stage's per-bucket detail JSON")
    parser.add_argument("--stats", type=Path, required=True, help="the preprocess stage's statistics JSON")
    parser.add_argument("--curves", type=Path, required=True, help="DVCLive plots folder of the train stage")
    parser.add_argument("--report", type=Path, required=True, help="Markdown report to write")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the PNG plots")
    parser.add_argument("--predictions", type=Path, required=True, help="the evaluate stage's predictions JSONL")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--gallery", type=Path, required=True, help="HTML error gallery to write")
    args = parser.parse_args(argv)
    params = StageParams.read(args.params)
    metrics, stats = {**read_json(args.metrics), **read_json(args.details)}, read_json(args.stats)
    title = f"{metrics['model']} on {metrics['dataset']}"
    answer_types = {t: {"accuracy": metrics[f"accuracy_{t}"], "n": metrics[f"n_{t}"]}
                    for t in ("closed", "open") if f"n_{t}" in metrics}
    plots = {
        "training_curves.png": lambda out: plot_training_curves(read_curves(args.curves), out, title=title),
        "accuracy_by_frequency.png": lambda out: plot_accuracy_bars(
            metrics["by_frequency"], out, title=f"{title}: by answer frequency in train", order=FREQUENCY_ORDER),
        "accuracy_by_answer_type.png": lambda out: plot_accuracy_bars(answer_types, out, title=f"{title}: by answer type"),
    }
    for name, draw in plots.items():
        with atomic_path(args.plots / name) as tmp:
            draw(tmp)
    with atomic_path(args.report) as tmp:
        tmp.write_text(render_report(metrics, stats, plot_names=list(plots)), encoding="utf-8")
    write_gallery(args.gallery, read_jsonl(args.predictions), ProcessedData.load(args.data), title=title,
                  max_rows=params.report.gallery_max_rows)


if __name__ == "__main__":
    run_stage(main)
