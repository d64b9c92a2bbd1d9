"""Stage features: run the frozen encoders once over every image and question, and cache the outputs.

Training and evaluation then read the features instead of running the frozen encoders every
epoch. A family or setting with nothing frozen gets an empty cache.
"""

import logging
from pathlib import Path

from vqalab.config import load_params
from vqalab.data.dataset import ProcessedData
from vqalab.data.features import compute_features, save_features
from vqalab.io import read_json
from vqalab.models.registry import get_family
from vqalab.stage import stage_parser
from vqalab.training.device import resolve_device, seed_everything

log = logging.getLogger("features")


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--spec", type=Path, required=True, help="the feature_spec stage's JSON file")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the cached features")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    spec = read_json(args.spec)
    if spec["family"] != params.model:
        raise ValueError(f"{args.spec} was written for {spec['family']}, but params model is {params.model}: run dvc repro")
    if not spec["frozen"]:
        log.info("%s.%s freezes no encoder: nothing to cache", params.model, params.profile)
        save_features(args.out, tensors={}, fingerprints={}, questions=[], spec=spec)
        return
    data = ProcessedData.load(args.data)
    seed_everything(params.seed)  # the same seed as the train stage: a random-init frozen encoder gets the same weights
    model = get_family(params.model).model_class.build(
        params.family, data.vocab.answers, train_texts=[r.question for r in data.records if r.split == "train"])
    questions = sorted({r.question for r in data.records})
    tensors, fingerprints = compute_features(model, data.images, questions, batch_size=params.evaluate.batch_size,
                                             device=resolve_device(params.train.device))
    log.info("cached %s", {name: list(t.shape) for name, t in tensors.items()})
    save_features(args.out, tensors=tensors, fingerprints=fingerprints, questions=questions, spec=spec)


if __name__ == "__main__":
    main()
