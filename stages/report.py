"""Stage report: metrics/report.md, PNG plots and the HTML error gallery from the earlier stages' outputs."""

from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="the evaluate stage's quality figures (JSON)")
    parser.add_argument("--cost", type=Path, required=True, help="the evaluate stage's cost figures (JSON)")
    parser.add_argument("--details", type=Path, required=True, help="the evaluate stage's run details (JSON)")
    parser.add_argument("--plots-data", type=Path, required=True, help="the evaluate stage's folder of plot data")
    parser.add_argument("--stats", type=Path, required=True, help="the preprocess stage's statistics JSON")
    parser.add_argument("--curves", type=Path, required=True, help="DVCLive plots folder of the train stage")
    parser.add_argument("--report", type=Path, required=True, help="Markdown report to write")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the PNG plots")
    parser.add_argument("--predictions", type=Path, required=True, help="the evaluate stage's predictions JSONL")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--gallery", type=Path, required=True, help="HTML error gallery to write")
    args = parser.parse_args(argv)
    params = load_params(args.params, stage="report")
    from vqalab.data.dataset import ProcessedData
    from vqalab.io import atomic_path, read_json, read_jsonl
    from vqalab.report.gallery import write_gallery
    from vqalab.report.report import plot_accuracy_bars, plot_training_curves, read_curves, render_report

    quality, cost, details = read_json(args.metrics), read_json(args.cost), read_json(args.details)
    plot_data = {path.stem: read_json(path) for path in sorted(args.plots_data.glob("*.json"))}
    title = f"{details['model']} on {details['dataset']}"
    plots = {
        "training_curves.png": lambda out: plot_training_curves(
            read_curves(args.curves), out, title=title, kept_epoch=details["best_epoch"],
            blind_val_accuracy=details["blind_val_accuracy"]),
        "accuracy_by_frequency.png": lambda out: plot_accuracy_bars(
            plot_data["accuracy_by_frequency"], out, group="bucket", title=f"{title}: by answer frequency in train"),
        "accuracy_by_answer_type.png": lambda out: plot_accuracy_bars(
            plot_data["accuracy_by_answer_type"], out, group="answer_type", title=f"{title}: by answer type"),
    }
    for name, draw in plots.items():
        with atomic_path(args.plots / name) as tmp:
            draw(tmp)
    with atomic_path(args.report) as tmp:
        tmp.write_text(render_report(quality, cost, details, plot_data, read_json(args.stats), plot_names=list(plots)),
                       encoding="utf-8")
    write_gallery(args.gallery, read_jsonl(args.predictions), ProcessedData.load(args.data), title=title,
                  max_rows=params.report.gallery_max_rows)


if __name__ == "__main__":
    run_stage(main)
