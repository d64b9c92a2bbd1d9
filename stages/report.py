"""Stage report: metrics/report.md and PNG plots from the evaluate and train stages' outputs."""

from pathlib import Path

from vqalab.io import atomic_path, read_json
from vqalab.report.report import plot_training_curves, read_curves, render_report
from vqalab.stage import stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--metrics", type=Path, required=True, help="the evaluate stage's metrics JSON")
    parser.add_argument("--stats", type=Path, required=True, help="the preprocess stage's statistics JSON")
    parser.add_argument("--curves", type=Path, required=True, help="DVCLive plots folder of the train stage")
    parser.add_argument("--report", type=Path, required=True, help="Markdown report to write")
    parser.add_argument("--plots", type=Path, required=True, help="folder for the PNG plots")
    args = parser.parse_args(argv)
    metrics, stats = read_json(args.metrics), read_json(args.stats)
    curves_png = args.plots / "training_curves.png"
    with atomic_path(curves_png) as tmp:
        plot_training_curves(read_curves(args.curves), tmp, title=f"{metrics['model']} on {metrics['dataset']}")
    with atomic_path(args.report) as tmp:
        tmp.write_text(render_report(metrics, stats, plot_names=[curves_png.name]), encoding="utf-8")


if __name__ == "__main__":
    main()
