"""Stage preprocess: validation split, answer vocabulary, resized images, statistics."""

from pathlib import Path

from vqalab.params import Params
from vqalab.data.preprocess import preprocess
from vqalab.io import atomic_path, write_json
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="preprocess")
    parser.add_argument("--raw", type=Path, required=True, help="the download stage's folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the processed data")
    parser.add_argument("--stats", type=Path, required=True, help="JSON file for the split statistics")
    args = parser.parse_args(argv)
    params = Params.read(args.params, stage="preprocess")
    with atomic_path(args.out, is_dir=True) as tmp:
        stats = preprocess(args.raw, tmp, image_size=params.family.image_size, resize=params.family.resize,
                           seed=params.seed,
                           val_fraction=params.preprocess.val_fraction,
                           val_split=params.preprocess.val_split,
                           min_answer_count=params.preprocess.min_answer_count)
    write_json(args.stats, {"dataset": params.dataset, **stats})


if __name__ == "__main__":
    run_stage(main)
