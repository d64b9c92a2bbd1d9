"""Step features: run the frozen encoders once over every image and question.

Training and evaluation then read the features instead of running the frozen encoders every
epoch. What they are is the family config's ``feature_spec`` (the frozen encoders and what builds
them; the stage's fingerprint, which training checks); a family or setting with nothing frozen
gets an empty cache.
"""

from __future__ import annotations

import torch

from vqalab.data.dataset import ProcessedData
from vqalab.data.features import CachedFeatures, compute_features
from vqalab.models.registry import chosen_family_config, get_family
from vqalab.params import Params
from vqalab.runtime import seed_everything

# Fixed rather than a parameter: an encoder's outputs differ in their last bits with the batch they
# ran in (convolution algorithms are chosen per shape), so a batch size - a speed setting - would
# change the cached features and retrain the model.
FEATURE_BATCH_SIZE = 64


def frozen_encoder_features(params: Params, data: ProcessedData, *, device: torch.device) -> CachedFeatures:
    """The chosen family's frozen encoders' outputs for every processed image and distinct question
    (none where nothing is frozen)."""
    config = chosen_family_config(params)
    if not config.feature_spec(seed=params.seed):
        return CachedFeatures(fingerprints={})
    # As the train stage builds it: a random-init frozen encoder gets the same weights (it is built first).
    seed_everything(params.seed)
    model = get_family(params.model).model_class.build(
        config, data.vocab.answers, train_texts=[r.question for r in data.records if r.split == "train"])
    questions = sorted({r.question for r in data.records})
    tensors, fingerprints = compute_features(model, data.images, questions, batch_size=FEATURE_BATCH_SIZE,
                                             device=device)
    return CachedFeatures.from_tensors(tensors, fingerprints, questions)
