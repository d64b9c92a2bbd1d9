"""Stage params: validate params.yaml and write what every later stage depends on.

It runs first whenever params.yaml changes, so a wrong value - an unknown model or data set, a
batch size of 0, a pretrained model that cannot be had - fails in seconds, before any data is
read. It writes data/params/<stage>.json: the values each stage reads (after the data set's
recipe), which is what dvc.yaml makes that stage depend on.
"""

from pathlib import Path

from vqalab.params import STAGE_PARAMS, load_params, stage_values
from vqalab.io import write_json
from vqalab.models.sources import check_pretrained_sources
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="params")
    parser.add_argument("--out", type=Path, required=True, help="folder for <stage>.json, one per stage")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    check_pretrained_sources(params)
    args.out.mkdir(parents=True, exist_ok=True)
    for stage in STAGE_PARAMS:
        write_json(args.out / f"{stage}.json", stage_values(params, stage))


if __name__ == "__main__":
    run_stage(main)
