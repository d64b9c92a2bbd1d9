"""Stage params: validate params.yaml and write every value the run uses.

It runs first whenever params.yaml changes, so a wrong value - an unknown model or data set, a
batch size of 0, a pretrained model that cannot be had - fails in seconds, before any data is
read. It writes data/params/resolved.json: every value of the run, the data set's recipe applied,
which every later stage reads and lists, key by key, as its DVC parameters.
"""

from pathlib import Path

from vqalab.io import write_json
from vqalab.params import RESOLVED_ROOT
from vqalab.resolve import load_params
from vqalab.models.sources import check_pretrained_sources
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="params")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the resolved parameters")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    check_pretrained_sources(params)
    write_json(args.out, {RESOLVED_ROOT: params.values})


if __name__ == "__main__":
    run_stage(main)
