"""What every model family provides, so the training loop and evaluation never ask which runs."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vqalab.data.vocab import IGNORE_INDEX, AnswerVocab

log = logging.getLogger(__name__)


@dataclass
class ModelOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class VQAModel(nn.Module):
    """Interface of a family's model.

    - ``collate(items)``: a list of ``VQADataset`` items -> a batch dict of tensors (the
      family's tokenisation and image normalisation live here).
    - ``forward(batch)`` -> ``ModelOutput`` with ``loss`` when the batch carries labels.
    - ``predict(batch, top_k, mode)`` -> for each question, the ``top_k`` (answer, score) pairs;
      ``prediction_modes`` lists the modes, the first being the default (a generative family can
      also rank candidate answers).
    - ``param_groups()``: optimiser parameter groups with their learning rates.
    - ``prepare_for_training(train_set, val_set, blind=)``: what is set from the data before
      gradient training starts (a classifier's question prior, from the blind baseline ``blind``;
      the generative family's closed-answer candidates); returns figures worth recording in the
      checkpoint ({} when nothing is set).
    - ``build(config, answers, train_texts=...)``: a new model from pretrained sources; families
      that fit a tokenizer to the data read the training questions from ``train_texts``.
    - ``pretrained_parts()``: {state-dict prefix: {"param", "source"}} of each part built from a
      pretrained source; a checkpoint keeps only the tensors that are no longer the source's
      (``vqalab.models.checkpoint``).
    - ``save_extra(directory)`` / ``from_saved(directory, config, answers)``: what a checkpoint
      needs beyond its tensors to rebuild the architecture without network; ``load_extra(directory)``
      what a loaded model reads back besides its tensors - its tokenizers and processor as trained,
      whatever their sources hold now (a source's weights are hash-checked, its tokenizer is not).
    - Cached features (families with frozen encoders): the config's ``feature_spec(seed=)`` says
      what the frozen encoders' outputs depend on ({} when nothing is frozen); the model's ``feature_fingerprints()``
      hashes their weights, and ``encode_image_features(uint8 pixels)`` /
      ``encode_question_features(questions)`` compute them; ``collate`` then takes items that carry
      ``image_features`` / ``question_features`` instead of pixels / text.
    """

    family: str
    description: str  # what the family is, in a phrase: its model card says it
    prediction_modes: tuple[str, ...] = ("classify",)
    # A CNN image encoder trains faster on CUDA in channels_last memory format (``use_channels_last``).
    image_encoder_is_cnn: bool = False
    # True when the untrained model already predicts as a baseline does (a fusion head that starts
    # at zero over the blind baseline's scores): fit then validates it before the first epoch, and
    # keeps it if no epoch does better on validation.
    starts_as_baseline: bool = False
    # True when training batches should keep each image's questions together: the model runs its
    # trainable image stages once per distinct image of a batch (``image_index`` maps its questions).
    batches_by_image: bool = False

    def __init__(self):
        super().__init__()
        # A classifier's training targets for list answers (``credit_answer_parts``); None: one-hot.
        self.part_credit: PartCredit | None = None

    def check_mode(self, mode: str | None) -> str:
        if mode is None:
            return self.prediction_modes[0]
        if mode not in self.prediction_modes:
            raise ValueError(f"{self.family} predicts in modes {self.prediction_modes}, not {mode!r}")
        return mode

    def pretrained_parts(self) -> dict[str, dict[str, str]]:
        return {}

    def load_extra(self, directory: Path) -> None:
        """Read back what ``save_extra`` wrote besides the architecture (nothing, for most families)."""

    def collate(self, items: list[dict]) -> dict:
        raise NotImplementedError

    def credit_answer_parts(self, credit: float) -> None:
        """Train a classifier toward ``PartCredit`` targets (``train.answer_part_credit``); 0: one-hot.
        A family that scores its answer vocabulary passes ``part_credit`` to ``classification_loss``."""
        self.part_credit = None
        if not credit:
            return
        if "classify" not in self.prediction_modes:
            raise ValueError(f"train.answer_part_credit applies to classifier families; {self.family} generates "
                             f"its answers: set it to 0")
        part_credit = PartCredit(self.answers, credit)
        log.info("train.answer_part_credit %g: %d list answers (\"chair, table\") share their training target "
                 "with their parts", credit, part_credit.list_answers)
        if part_credit.list_answers:
            self.part_credit = part_credit

    def prepare_for_training(self, train_set, val_set, *, blind) -> dict:
        return {}

    def predict(self, batch: dict, top_k: int = 1, mode: str | None = None) -> list[list[tuple[str, float]]]:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        raise NotImplementedError

    def save_extra(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def build(cls, config, answers: list[str], *, train_texts: list[str] = ()) -> "VQAModel":
        raise NotImplementedError

    @classmethod
    def from_saved(cls, directory: Path, config, answers: list[str]) -> "VQAModel":
        raise NotImplementedError

    def feature_fingerprints(self) -> dict[str, str]:
        return {}

    def encode_image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.family} caches no image features")

    def encode_question_features(self, questions: list[str]) -> torch.Tensor:
        raise NotImplementedError(f"{self.family} caches no question features")

    def parameter_counts(self) -> dict[str, int]:
        return {
            "trainable_params": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in self.parameters()),
        }


class PartCredit(nn.Module):
    """Training targets that give a list answer's parts their share: a question answered
    ``"chair, table"`` keeps ``1 - credit`` on that answer and spreads ``credit`` evenly over
    ``chair`` and ``table`` where they are answers of their own (``AnswerVocab.list_parts``). A
    model that says "chair" to it is then partly right, not as wrong as one that says "lamp"; every
    other answer keeps its one-hot target. Evaluation is unchanged: exact answers only."""

    def __init__(self, answers: list[str], credit: float):
        super().__init__()
        parts = AnswerVocab(answers).list_parts()
        self.list_answers = len(parts)
        width = 1 + max(map(len, parts.values()), default=0)
        # Row ``label``: the labels its target covers - itself first, then its parts - and their shares
        # (padding repeats the label with share 0).
        target_labels = torch.arange(len(answers))[:, None].repeat(1, width)
        target_shares = torch.zeros(len(answers), width)
        target_shares[:, 0] = 1.0
        for label, labels in parts.items():
            target_labels[label, 1:1 + len(labels)] = torch.tensor(labels)
            target_shares[label, 0] = 1 - credit
            target_shares[label, 1:1 + len(labels)] = credit / len(labels)
        # Not in the state dict: a checkpoint's weights do not depend on how they were trained.
        self.register_buffer("target_labels", target_labels, persistent=False)
        self.register_buffer("target_shares", target_shares, persistent=False)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against the targets, averaged as ``classification_loss`` averages."""
        known = labels != IGNORE_INDEX
        rows = labels.clamp(min=0)
        log_probs = logits.float().log_softmax(-1).gather(1, self.target_labels[rows])
        return -((self.target_shares[rows] * log_probs).sum(-1) * known).sum() / known.sum().clamp(min=1)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor | None,
                        part_credit: PartCredit | None = None) -> torch.Tensor | None:
    """Cross-entropy over the answers (None without labels), against ``part_credit``'s targets where
    given. A batch whose answers are all outside the vocabulary gives a zero that keeps the graph:
    every process of a data-parallel run must take part in each backward pass, where DDP reduces
    the gradients, or the others wait forever."""
    if labels is None:
        return None
    if part_credit is not None:
        return part_credit.loss(logits, labels)
    # The mean over the answers in the vocabulary, written so that it needs no host sync (a test of
    # "any label left?" would stall the GPU every step) and is 0 for a batch with none.
    summed = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return summed / (labels != IGNORE_INDEX).sum().clamp(min=1)


def top_answers(logits: torch.Tensor, answers: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    probs = logits.float().softmax(-1)
    scores, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[(answers[i], float(s)) for s, i in zip(row_s.tolist(), row_i.tolist())]
            for row_s, row_i in zip(scores, indices)]


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 of the tensors' names and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint(module: nn.Module) -> str:
    """A hash of a module's weights: cached features are only used with the weights that made them."""
    return tensors_digest(module.state_dict())
