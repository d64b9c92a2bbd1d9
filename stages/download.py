"""Stage download: read the chosen data set from its source into the common record schema."""

from dataclasses import asdict
from pathlib import Path

from vqalab.config import load_params
from vqalab.data.collect import MANIFEST_FILE, RecordCollector
from vqalab.data.registry import get_dataset
from vqalab.io import atomic_path, write_json
from vqalab.stage import stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for records.jsonl, images/ and manifest.json")
    parser.add_argument("--downloads", type=Path, required=True,
                        help="folder that keeps downloaded and unpacked source files between runs")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    with atomic_path(args.out, is_dir=True) as tmp:
        collector = RecordCollector(tmp, on_bad_record=params.download.on_bad_record)
        get_dataset(params.dataset).materialize(params.dataset_config, collector=collector, downloads=args.downloads)
        counts = collector.finish(max_images_per_split=params.download.max_images_per_split)
        write_json(tmp / MANIFEST_FILE, {"dataset": params.dataset, "config": asdict(params.dataset_config), **counts})


if __name__ == "__main__":
    main()
