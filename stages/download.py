"""Stage download: read the chosen data set from its source into the common record schema
(``vqalab.pipeline.download``)."""

from pathlib import Path

from vqalab.params import Params
from vqalab.pipeline.download import download_data
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="download")
    parser.add_argument("--out", type=Path, required=True, help="folder for records.jsonl, images/ and manifest.json")
    parser.add_argument("--downloads", type=Path, required=True,
                        help="folder that keeps downloaded and unpacked source files between runs")
    args = parser.parse_args(argv)
    download_data(Params.read(args.params, stage="download"), args.out, downloads=args.downloads)


if __name__ == "__main__":
    run_stage(main)
