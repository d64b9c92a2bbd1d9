"""Stage validate: check all of params.yaml before any other stage runs.

DVC runs it first whenever a value or conf/ changes (every other stage depends on its output), so a
wrong value - an unknown key, a wrong type, a batch size of 0, a pretrained model that cannot be had -
fails within seconds, naming it, before any data is read or model built; and a params.yaml that is
not what conf/ composes is refused with the command to run. Its output never changes, so it makes
no other stage rerun.
"""

from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser

# What the stage writes when params.yaml is valid: always the same, so the stages after it rerun
# only for their own inputs.
VALIDATED = "params.yaml and conf/ checked by stages/validate.py\n"


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="file written when params.yaml is valid")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    from vqalab.models.registry import chosen_family_config
    from vqalab.models.sources import check_pretrained_sources, family_sources
    from vqalab.pipeline.validate import check_params

    check_params(params)
    check_pretrained_sources({**family_sources(chosen_family_config(params)), "evaluate.sbert_model": params.sbert_model})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(VALIDATED, encoding="utf-8")


if __name__ == "__main__":
    run_stage(main)
