"""Step blind: fit the question-only baseline once per data set, split and question encoder.

Its classifier and its answers to the validation and test questions are cached
(``vqalab.evaluation.blind.BlindBaseline``): the train stage starts a classifier from it (the
question prior) and the evaluate stage scores its answers beside the model's, so a new learning
rate or model family neither refits nor re-embeds anything.
"""

from __future__ import annotations

import numpy as np

from collections.abc import Sequence

from vqalab.data.schema import Record
from vqalab.evaluation.blind import BlindBaseline, fit_question_classifier
from vqalab.evaluation.similarity import sentence_embeddings
from vqalab.params import Params


def blind_baseline(params: Params, records: Sequence[Record], answers: Sequence[str]) -> BlindBaseline:
    """The blind baseline over the answer vocabulary ``answers``: fitted on the train records (``C``
    chosen on the val records), the questions embedded by the profile's SBERT scorer, with its
    answers to the val and test records. Neither images nor the model are read: a new image size or
    model family keeps it."""
    train, val, test = ([r for r in records if r.split == name] for name in ("train", "val", "test"))
    vectors = sentence_embeddings([r.question for r in (*train, *val, *test)], model_name=params.sbert_model)
    x_train, x_val, x_test = np.split(vectors, [len(train), len(train) + len(val)])
    classifier = fit_question_classifier(x_train, [r.answer for r in train], x_val, [r.answer for r in val],
                                         answers=answers, encoder=params.sbert_model)
    predicted = classifier.predict(np.concatenate([x_val, x_test]))
    return BlindBaseline(classifier, {r.id: answer for r, answer in zip((*val, *test), predicted)})
