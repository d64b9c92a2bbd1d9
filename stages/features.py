"""Stage features: run the frozen encoders once over every image and question, and cache the outputs.

Training and evaluation then read the features instead of running the frozen encoders every
epoch. Its parameters are only what the frozen encoders' outputs depend on (``Params.encoders``),
so a new learning rate keeps the cache; a family or setting with nothing frozen gets an empty one.
"""

import logging
from pathlib import Path

from vqalab.params import Params
from vqalab.data.dataset import ProcessedData
from vqalab.data.features import compute_features, save_features
from vqalab.models.registry import family_config, get_family
from vqalab.stage import run_stage, stage_parser
from vqalab.training.device import resolve_device, seed_everything

log = logging.getLogger("features")
# Fixed rather than a parameter: an encoder's outputs differ in their last bits with the batch they
# ran in (convolution algorithms are chosen per shape), so a batch size - a speed setting - would
# change the cached features and retrain the model.
FEATURE_BATCH_SIZE = 64


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="features")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cached features")
    args = parser.parse_args(argv)
    params = Params.read(args.params, stage="features")
    frozen = params.encoders["frozen"]
    spec = {"family": params.model, "frozen": frozen}
    if not frozen:
        log.info("%s.%s freezes no encoder: nothing to cache", params.model, params.profile)
        save_features(args.out, tensors={}, fingerprints={}, questions=[], spec=spec)
        return
    data = ProcessedData.load(args.data)
    # The train stage's seed: a random-init frozen encoder gets the same weights (it is built first).
    seed_everything(frozen.get("image", {}).get("seed", 0))
    config = family_config(params.model, params.profile, params.encoders["config"])
    model = get_family(params.model).model_class.build(
        config, data.vocab.answers, train_texts=[r.question for r in data.records if r.split == "train"])
    questions = sorted({r.question for r in data.records})
    tensors, fingerprints = compute_features(model, data.images, questions, batch_size=FEATURE_BATCH_SIZE,
                                             device=resolve_device(params.train.device))
    log.info("cached %s", {name: list(t.shape) for name, t in tensors.items()})
    save_features(args.out, tensors=tensors, fingerprints=fingerprints, questions=questions, spec=spec)


if __name__ == "__main__":
    run_stage(main)
