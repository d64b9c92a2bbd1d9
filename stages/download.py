"""Stage download: materialise the chosen data set into the common record schema."""

from pathlib import Path

from vqalab.config import load_params
from vqalab.data.registry import get_dataset
from vqalab.io import atomic_path, write_json
from vqalab.stage import stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for records.jsonl and images/")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    materialize = get_dataset(params.dataset)
    with atomic_path(args.out, is_dir=True) as tmp:
        counts = materialize(tmp, max_images_per_split=params.download.max_images_per_split)
        write_json(tmp / "manifest.json", {"dataset": params.dataset, "counts": counts})


if __name__ == "__main__":
    main()
