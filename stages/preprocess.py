"""Stage preprocess: validation split, answer vocabulary, resized images, statistics
(``vqalab.pipeline.preprocess``)."""

from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--raw", type=Path, required=True, help="the download stage's folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the processed data")
    parser.add_argument("--stats", type=Path, required=True, help="JSON file for the split statistics")
    args = parser.parse_args(argv)
    params = load_params(args.params, stage="preprocess")
    from vqalab.io import write_json
    from vqalab.pipeline.preprocess import preprocess_data

    write_json(args.stats, preprocess_data(params, args.raw, args.out))


if __name__ == "__main__":
    run_stage(main)
