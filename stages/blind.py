"""Stage blind: fit the question-only baseline and cache it with its answers (``vqalab.pipeline.blind``)."""

from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--records", type=Path, required=True, help="the preprocess stage's records (with their splits)")
    parser.add_argument("--answers", type=Path, required=True, help="the preprocess stage's answer vocabulary")
    parser.add_argument("--out", type=Path, required=True, help="folder for the fitted baseline")
    args = parser.parse_args(argv)
    params = load_params(args.params, stage="blind")
    from vqalab.models.sources import check_pretrained_sources

    check_pretrained_sources({"evaluate.sbert_model": params.sbert_model})
    from vqalab.data.schema import read_records
    from vqalab.io import read_json
    from vqalab.pipeline.blind import blind_baseline

    blind_baseline(params, read_records(args.records), read_json(args.answers)).save(args.out)


if __name__ == "__main__":
    run_stage(main)
