"""The question prior: the blind baseline's answer scores as a fixed part of a classifier.

A classifier with ``question_prior`` adds to its answer logits the log-probabilities of the blind
baseline (``vqalab.evaluation.blind``: a logistic regression on the sentence embedding of the
question alone, fitted once by the blind stage, its ``C`` chosen on validation), and its own answer
head starts at zero: the untrained model predicts as the blind baseline does, and training learns
only what the image adds. The model reads the question with the encoder the baseline was fitted
on (the SBERT scorer: the same weights and pooling), so the prior's input is the baseline's. On small real data sets (VQA-RAD: 1,608 training
questions) heads trained from scratch scored below that baseline: they fitted image noise before
they had learnt the questions. The fusion classifiers read the prior from their frozen text
encoder's features; vilt, whose text goes through its own transformer, from a frozen sentence
encoder kept beside it. Both cache those features in the features stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn



def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A sentence embedding: the mean of the token states where ``mask`` is 1."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class QuestionPrior(nn.Linear):
    """The blind classifier's weights over a model's answers, fixed (no gradient), zero until ``fit``.
    A plain ``nn.Linear`` underneath, so its state dict keys are ``weight`` and ``bias``."""

    def __init__(self, question_size: int, answers: int):
        super().__init__(question_size, answers)
        self.requires_grad_(False)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)

    def set_from(self, blind, *, answers: list[str], encoder: str, where: str) -> dict:
        """Take the blind baseline's classifier (``vqalab.evaluation.blind.BlindBaseline``), fitted on
        the embeddings of ``encoder`` over ``answers``; the figures worth recording in the checkpoint.
        ``where`` names the parameter that chose the model's question encoder, for the message."""
        classifier = blind.classifier
        if classifier.encoder != encoder:
            raise ValueError(f"question_prior: the blind baseline was fitted on {classifier.encoder!r} embeddings, but "
                             f"{where} is {encoder!r}: make them the same sentence encoder, or set question_prior: false")
        if classifier.answers != answers:
            raise ValueError("question_prior: the blind baseline was fitted over other answers than this model's: "
                             "rerun the blind stage (dvc repro)")
        self.weight.copy_(torch.from_numpy(classifier.weight))
        self.bias.copy_(torch.from_numpy(classifier.bias))
        return {"question_prior_C": classifier.C, "question_prior_val_log_loss": classifier.val_log_loss,
                "question_prior_val_accuracy": classifier.val_accuracy}

    def log_probs(self, question_features: torch.Tensor) -> torch.Tensor:
        """The blind baseline's answer log-probabilities, from the unit-length question vector it was fitted on."""
        question = question_features.to(self.weight.dtype)
        return self(F.normalize(question, dim=-1)).log_softmax(-1)
