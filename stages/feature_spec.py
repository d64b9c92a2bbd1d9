"""Stage feature_spec: what the frozen encoders' cached features depend on, as a small JSON file.

The features stage depends on this file rather than on the family's whole params section: a new
learning rate rewrites an identical spec, so DVC keeps the cached features; another encoder,
resolution or training mode (or seed, for a random-init frozen encoder) changes the spec and
recomputes them.
"""

from pathlib import Path

from vqalab.config import load_params
from vqalab.io import write_json
from vqalab.models.registry import get_family
from vqalab.stage import stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the spec")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    frozen = get_family(params.model).model_class.feature_spec(params.family, seed=params.seed)
    write_json(args.out, {"family": params.model, "frozen": frozen})


if __name__ == "__main__":
    main()
