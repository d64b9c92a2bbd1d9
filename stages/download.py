"""Stage download: read the chosen data set from its source into the common record schema
(``vqalab.pipeline.download``)."""

from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for records.jsonl, images/ and manifest.json")
    parser.add_argument("--downloads", type=Path, required=True,
                        help="folder that keeps downloaded and unpacked source files between runs")
    args = parser.parse_args(argv)
    params = load_params(args.params, stage="download")
    from vqalab.pipeline.download import download_data

    download_data(params, args.out, downloads=args.downloads)


if __name__ == "__main__":
    run_stage(main)
