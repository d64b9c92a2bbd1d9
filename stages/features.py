"""Stage features: run the frozen encoders once over every image and question, and cache the outputs
(``vqalab.pipeline.features``)."""

import logging
from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser

log = logging.getLogger("features")


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cached features")
    args = parser.parse_args(argv)
    params = load_params(args.params, stage="features")
    from vqalab.models.registry import chosen_family_config
    from vqalab.models.sources import check_pretrained_sources, family_sources

    family = chosen_family_config(params)  # typed first: a wrong value fails before any import of torch
    check_pretrained_sources(family_sources(family))
    from vqalab.data.dataset import ProcessedData
    from vqalab.pipeline.features import frozen_encoder_features
    from vqalab.runtime import resolve_device

    features = frozen_encoder_features(params, ProcessedData.load(args.data), device=resolve_device(params.train.device))
    if features:
        log.info("cached %s", {name: list(t.shape) for name, t in (("image", features.image),
                                                                    ("question", features.question)) if t is not None})
    else:
        log.info("%s freezes no encoder here: nothing to cache", params.model)
    features.save(args.out, spec={"family": params.model, "frozen": family.feature_spec(seed=params.seed)})


if __name__ == "__main__":
    run_stage(main)
