"""Stage features: run the frozen encoders once over every image and question, and cache the outputs
(``vqalab.pipeline.features``)."""

import logging
from pathlib import Path

from vqalab.data.dataset import ProcessedData
from vqalab.params import Params
from vqalab.pipeline.features import frozen_encoder_features
from vqalab.runtime import resolve_device
from vqalab.stage import run_stage, stage_parser

log = logging.getLogger("features")


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="features")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cached features")
    args = parser.parse_args(argv)
    params = Params.read(args.params, stage="features")
    features = frozen_encoder_features(params, ProcessedData.load(args.data), device=resolve_device(params.train.device))
    if features:
        log.info("cached %s", {name: list(t.shape) for name, t in (("image", features.image),
                                                                    ("question", features.question)) if t is not None})
    else:
        log.info("%s.%s freezes no encoder: nothing to cache", params.model, params.profile)
    features.save(args.out, spec={"family": params.model, "frozen": params.encoders["frozen"]})


if __name__ == "__main__":
    run_stage(main)
