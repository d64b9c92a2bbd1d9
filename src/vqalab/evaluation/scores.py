"""Every figure of a test run (``score_predictions``), and what the evaluate stage writes of them.

- quality (metrics/eval.json): the figures a reader compares across experiments - accuracy overall
  and per answer type, the blind (question-only) baseline and the image gain, SBERT similarity,
  WUPS and answer coverage; the same for two runs of the same setting on one machine;
- cost (metrics/cost.json): what the run cost - training time and throughput, test latency, peak
  memory, parameter counts; different in every run, so kept apart (``dvc metrics diff --targets``);
- plots (metrics/plots/*.json): accuracy by answer type and by answer frequency in train, the
  model's beside the blind baseline's, one row per bar, as ``dvc plots diff`` overlays them;
- details (metrics/eval_details.json): what a run is (names, counts, the seed) and the report's
  other figures. Names and counts are not metrics: in eval.json they would be columns of
  ``dvc exp show`` that say nothing about quality.
"""

from __future__ import annotations

from collections.abc import Sequence

from vqalab.evaluation.metrics import FREQUENCY_BUCKETS, accuracy, accuracy_by_group, accuracy_figures, exact_match
from vqalab.evaluation.similarity import sbert_similarity
from vqalab.evaluation.stats import PairedDifference, mean_interval
from vqalab.evaluation.wordnet import load_wordnet
from vqalab.evaluation.wups import wups

# Quality figures of a prediction mode's scores (``score_predictions``), where present.
QUALITY_KEYS = ("accuracy", "accuracy_closed", "accuracy_open", "sbert_similarity", "wups_09", "wups_00",
                "answer_coverage")
ANSWER_TYPES = ("closed", "open")
BLIND_LABEL = "blind baseline"


def score_predictions(predictions: Sequence[str], records: Sequence, *, train_answer_counts: dict[str, int],
                      sbert_model: str) -> dict:
    """Every figure for one set of test predictions (``records``: the test records, in order)."""
    golds = [r.answer for r in records]
    covered = [train_answer_counts.get(g, 0) > 0 for g in golds]
    result = {
        **accuracy_figures(predictions, records, train_answer_counts=train_answer_counts),
        # The ceiling of a classifier over the training answers, beside what was achieved.
        "answer_coverage": sum(covered) / len(covered) if covered else float("nan"),
        "sbert_similarity": sbert_similarity(predictions, golds, model_name=sbert_model),
    }
    question_types = [r.question_type for r in records]
    if any(question_types):
        result["by_question_type"] = accuracy_by_group(predictions, golds, question_types)
    wordnet, why_not = load_wordnet()
    if wordnet is None:
        result["wups_unavailable"] = why_not
    else:
        result["wups_09"] = wups(predictions, golds, threshold=0.9, wordnet=wordnet)
        result["wups_00"] = wups(predictions, golds, threshold=0.0, wordnet=wordnet)
    return result


def image_sensitivity(answers: Sequence[str], shuffled_answers: Sequence[str]) -> float:
    """The share of answers that change when each question is shown another question's image: 0 for
    a model that does not read the image, whatever its accuracy."""
    if len(answers) != len(shuffled_answers) or not answers:
        raise ValueError(f"image_sensitivity needs one shuffled-image answer per answer, got "
                         f"{len(shuffled_answers)} for {len(answers)}")
    return sum(a != s for a, s in zip(answers, shuffled_answers)) / len(answers)


def quality_figures(scores: dict, blind: dict, *, answers: Sequence[str], image_gain: PairedDifference,
                    shuffled_answers: Sequence[str], golds: Sequence[str], other_modes: dict[str, dict]) -> dict:
    """The headline mode's quality figures (its ``answers`` to the test questions with gold answers
    ``golds``), the blind baseline's and the image gain (accuracy minus blind accuracy), each with
    a 95% interval from the test questions (for the gain, ``image_gain``: ``image_gain_test``'s
    paired comparison with the blind baseline's answers); how much the image matters
    (``shuffled_image_accuracy``: with the images shuffled among the questions;
    ``image_sensitivity``: the share of answers that change); and every other prediction mode's
    accuracy (``accuracy_<mode>``). The intervals are lists, which ``dvc metrics diff`` and
    ``dvc exp show`` leave out."""
    figures = {key: scores[key] for key in QUALITY_KEYS if key in scores}
    figures["accuracy_ci95"] = list(mean_interval(exact_match(answers, golds)))
    figures["blind_accuracy"] = blind["accuracy"]
    for answer_type in ANSWER_TYPES:
        if f"accuracy_{answer_type}" in blind:
            figures[f"blind_accuracy_{answer_type}"] = blind[f"accuracy_{answer_type}"]
    figures["image_gain"] = scores["accuracy"] - blind["accuracy"]
    figures["image_gain_ci95"] = [image_gain.low, image_gain.high]
    figures["shuffled_image_accuracy"] = accuracy(shuffled_answers, golds)
    figures["image_sensitivity"] = image_sensitivity(answers, shuffled_answers)
    figures.update({f"accuracy_{mode}": mode_scores["accuracy"] for mode, mode_scores in other_modes.items()})
    return figures


def plot_rows(scores: dict, blind: dict) -> dict[str, list[dict]]:
    """Rows of the two bar plots: by answer type (and all questions) and by frequency bucket, each
    group's model bar followed by its blind-baseline bar, with the number of test questions."""
    by_type = []
    for answer_type in (*ANSWER_TYPES, "all"):
        key, n_key = ("accuracy", "n") if answer_type == "all" else (f"accuracy_{answer_type}", f"n_{answer_type}")
        if key in scores:
            by_type += [{"answer_type": answer_type, "accuracy": scores[key], "questions": scores[n_key]},
                        {"answer_type": f"{answer_type}, {BLIND_LABEL}", "accuracy": blind[key],
                         "questions": scores[n_key]}]
    by_frequency = []
    for bucket, _, _ in FREQUENCY_BUCKETS:
        if bucket in scores["by_frequency"]:
            group, blind_group = scores["by_frequency"][bucket], blind["by_frequency"][bucket]
            by_frequency += [{"bucket": bucket, "accuracy": group["accuracy"], "questions": group["n"]},
                             {"bucket": f"{bucket}, {BLIND_LABEL}", "accuracy": blind_group["accuracy"],
                              "questions": group["n"]}]
    return {"accuracy_by_answer_type": by_type, "accuracy_by_frequency": by_frequency}
