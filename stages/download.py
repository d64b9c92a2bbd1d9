"""Stage download: read the chosen data set from its source into the common record schema."""

from pathlib import Path

from vqalab.params import Params
from vqalab.data.registry import dataset_config, download
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="download")
    parser.add_argument("--out", type=Path, required=True, help="folder for records.jsonl, images/ and manifest.json")
    parser.add_argument("--downloads", type=Path, required=True,
                        help="folder that keeps downloaded and unpacked source files between runs")
    args = parser.parse_args(argv)
    params = Params.read(args.params, stage="download")
    download(params.dataset, dataset_config(params), out=args.out,
             downloads=args.downloads, on_bad_record=params.download.on_bad_record,
             max_images_per_split=params.download.max_images_per_split)


if __name__ == "__main__":
    run_stage(main)
