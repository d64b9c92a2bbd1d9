"""The blind baseline: a classifier that reads the question and never sees the image.

A model that scores below it is not using the image, whatever its accuracy. The blind stage fits
it once per data set, split and question encoder (``vqalab.pipeline.blind``); the evaluate stage
scores its answers beside the model's (``blind_accuracy``, ``image_gain``), and the classifiers
(fusion, vilt) can start from it (``question_prior``, ``vqalab.models.prior``) so that training
only has to learn what the image adds.

It is a multinomial logistic regression on L2-normalised sentence embeddings of the questions
(the evaluate stage's SBERT scorer). Its one hyper-parameter, the inverse regularisation strength
``C``, is chosen on the validation split by log-loss; the test split is never seen while fitting.

Why log-loss and not accuracy: on a small validation split accuracy is a coarse, noisy criterion.
On VQA-RAD (173 validation questions, a quarter of them with answers never seen in training)
validation accuracy moved by 6 points across the grid with no trend and picked the most
regularised C, a classifier that mostly says "yes"; the log-loss of the answers the classifier can
give scores every probability it assigns and has a clear minimum.

The solver is full-batch L-BFGS in PyTorch, started from the answers' log frequencies and
warm-started from one C to the next, and the grid is searched from its middle outwards, stopping
where the validation log-loss rises (it is unimodal in C): DAQUAR's 4,500 training questions over
some 750 answers fit in seconds, where scikit-learn's per-C fits over the whole grid took minutes.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vqalab.io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
# An answer with no training question is never chosen.
UNSEEN_BIAS = -1e4
CLASSIFIER_FILE = "classifier.safetensors"
INFO_FILE = "blind.json"


def normalise_rows(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.clip(np.linalg.norm(features, axis=1, keepdims=True), 1e-12, None)


@dataclass
class QuestionClassifier:
    """A fitted blind classifier: ``C``, the validation log-loss that chose it and the validation
    accuracy, and the weights as a matrix over ``answers``; ``encoder`` names the sentence encoder
    whose embeddings it reads."""

    answers: list[str]
    weight: np.ndarray  # (answers, features)
    bias: np.ndarray  # (answers,)
    C: float
    encoder: str = ""
    val_log_loss: float = float("nan")
    val_accuracy: float = float("nan")

    def logits(self, features: np.ndarray) -> np.ndarray:
        return normalise_rows(features) @ self.weight.T + self.bias

    def predict(self, features: np.ndarray) -> list[str]:
        return [self.answers[i] for i in self.logits(features).argmax(1)]

    def log_loss(self, features: np.ndarray, answers: Sequence[str]) -> float:
        """Mean negative log-probability of the given answers that the classifier can give (an
        answer outside ``answers`` has no probability to score)."""
        index = {a: i for i, a in enumerate(self.answers)}
        rows = [(row, index[a]) for row, a in enumerate(answers) if a in index]
        if not rows:
            raise ValueError("no validation answer is in the answer vocabulary: the log-loss that chooses C is undefined")
        logits = torch.from_numpy(self.logits(features[[row for row, _ in rows]]))
        return float(F.cross_entropy(logits.double(), torch.tensor([i for _, i in rows])))

    def save(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"weight": self.weight, "bias": self.bias}, str(directory / CLASSIFIER_FILE))

    @classmethod
    def load(cls, directory: Path, info: dict) -> QuestionClassifier:
        from safetensors.numpy import load_file

        tensors = load_file(str(directory / CLASSIFIER_FILE))
        return cls(info["answers"], tensors["weight"], tensors["bias"], info["C"], encoder=info["encoder"],
                   val_log_loss=info["val_log_loss"], val_accuracy=info["val_accuracy"])


def fit_multinomial(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, *, classes: int, C: float,
                    start: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) minimising sum_i w_i CE(x_i W^T + b, y_i) + ||W||^2 / (2C), as scikit-learn's
    LogisticRegression does (the bias is not penalised), by full-batch L-BFGS from ``start``."""
    total = float(weights.sum())
    if start is None:  # the optimum of the bias alone (W = 0): the answers' log frequencies
        frequency = torch.zeros(classes).index_add_(0, y, weights) / total
        start = (torch.zeros(classes, x.shape[1]), frequency.clamp(min=1e-12).log())
    weight, bias = start[0].clone().requires_grad_(), start[1].clone().requires_grad_()
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=500, history_size=20, tolerance_grad=1e-5,
                                  tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        # Divided by the total weight: the same minimiser, gradients of order 1 for the tolerances.
        loss = ((F.cross_entropy(x @ weight.T + bias, y, reduction="none") * weights).sum()
                + (weight * weight).sum() / (2 * C)) / total
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def fit_question_classifier(train_features: np.ndarray, train_answers: Sequence[str], val_features: np.ndarray,
                            val_answers: Sequence[str], *, answers: Sequence[str], encoder: str = "",
                            c_grid: Sequence[float] = C_GRID) -> QuestionClassifier:
    """Fit on train and keep the ``C`` of ``c_grid`` with the lowest validation log-loss (the smaller
    C on a tie). Training answers outside ``answers`` are left out, as the classifiers' losses leave
    them out.

    Identical (question, answer) rows are merged into one weighted sample, which gives the same
    objective: templated data sets (easy-VQA: 34,721 training questions) fit in seconds.
    """
    answers = list(answers)
    index = {a: i for i, a in enumerate(answers)}
    train_features = normalise_rows(train_features)
    rows = [(i, a) for i, a in enumerate(train_answers) if a in index]
    if len({a for _, a in rows}) < 2:
        raise ValueError("the blind baseline needs at least two distinct training answers inside the vocabulary")
    merged = Counter((train_features[i].tobytes(), a) for i, a in rows)
    first_row = {}
    for i, a in rows:
        first_row.setdefault((train_features[i].tobytes(), a), i)
    keys = list(merged)
    present = sorted({index[a] for _, a in keys})  # the answers with a training question
    column = {answer_index: c for c, answer_index in enumerate(present)}
    x = torch.from_numpy(train_features[[first_row[k] for k in keys]])
    y = torch.tensor([column[index[a]] for _, a in keys])
    weights = torch.tensor([merged[k] for k in keys], dtype=torch.float32)
    val_features = normalise_rows(val_features)

    def fit(c: float, start) -> tuple[QuestionClassifier, tuple[torch.Tensor, torch.Tensor]]:
        solution = fit_multinomial(x, y, weights, classes=len(present), C=c, start=start)
        weight = np.zeros((len(answers), x.shape[1]), dtype=np.float32)
        bias = np.full(len(answers), UNSEEN_BIAS, dtype=np.float32)
        weight[present], bias[present] = solution[0].numpy(), solution[1].numpy()
        candidate = QuestionClassifier(answers, weight, bias, float(c), encoder=encoder)
        candidate.val_log_loss = candidate.log_loss(val_features, val_answers)
        predictions = candidate.predict(val_features)
        candidate.val_accuracy = float(np.mean([p == g for p, g in zip(predictions, val_answers)]))
        log.info("blind baseline C=%g: validation log-loss %.4f, accuracy %.4f", c, candidate.val_log_loss,
                 candidate.val_accuracy)
        return candidate, solution

    # From the grid's middle, towards smaller C while the validation log-loss falls (a tie goes to the
    # smaller C, the simpler model), else towards larger C: the loss is unimodal in C, so this finds
    # the grid's minimum with two or three fits, each warm-started from its neighbour's solution.
    grid = sorted(c_grid)
    middle = len(grid) // 2
    best, best_solution = fit(grid[middle], None)
    for direction in (-1, 1):
        index, solution, moved = middle + direction, best_solution, False
        while 0 <= index < len(grid):
            candidate, solution = fit(grid[index], solution)
            better = (candidate.val_log_loss <= best.val_log_loss if direction < 0
                      else candidate.val_log_loss < best.val_log_loss)
            if not better:
                break
            best, best_solution, moved, index = candidate, solution, True, index + direction
        if moved:
            break
    log.info("blind baseline: C=%g chosen on validation (log-loss %.4f, accuracy %.4f)", best.C, best.val_log_loss,
             best.val_accuracy)
    return best


@dataclass
class BlindBaseline:
    """The fitted blind classifier and its answer to every validation and test question (by record id)."""

    classifier: QuestionClassifier
    predictions: dict[str, str]

    def answers_to(self, records: Sequence) -> list[str]:
        missing = [r.id for r in records if r.id not in self.predictions]
        if missing:
            raise ValueError(f"the blind baseline has no answer to {len(missing)} of these questions (first: "
                             f"{missing[0]}): it was fitted on other data; rerun the blind stage (dvc repro)")
        return [self.predictions[r.id] for r in records]

    def save(self, directory: str | Path) -> None:
        c = self.classifier
        with atomic_path(directory, is_dir=True) as tmp:
            c.save(tmp)
            write_json(tmp / INFO_FILE, {"encoder": c.encoder, "C": c.C, "val_log_loss": c.val_log_loss,
                                         "val_accuracy": c.val_accuracy, "answers": c.answers,
                                         "predictions": self.predictions})

    @classmethod
    def load(cls, directory: str | Path) -> BlindBaseline:
        directory = Path(directory)
        if not (directory / INFO_FILE).is_file():
            raise FileNotFoundError(f"{directory} holds no blind baseline ({INFO_FILE} is missing): run the blind stage")
        info = read_json(directory / INFO_FILE)
        return cls(QuestionClassifier.load(directory, info), info["predictions"])
