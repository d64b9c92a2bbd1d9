"""The answer vocabulary of the classifier families, built from the training split only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

IGNORE_INDEX = -100  # label of an answer outside the vocabulary: ignored by the loss
# How an answer lists several objects ("chair, table": DAQUAR's multi-object answers).
LIST_SEPARATOR = ","


class AnswerVocab:
    """Answers ordered by training frequency (ties alphabetical), so index 0 is the most common."""

    def __init__(self, answers: Iterable[str]):
        self.answers = list(answers)
        self._index = {a: i for i, a in enumerate(self.answers)}
        if len(self._index) != len(self.answers):
            raise ValueError("answer vocabulary holds duplicate answers")

    @classmethod
    def build(cls, train_answers: Iterable[str], *, min_count: int = 1) -> "AnswerVocab":
        counts = Counter(train_answers)
        kept = [a for a, n in counts.items() if n >= min_count]
        if not kept:
            raise ValueError(f"no training answer occurs at least min_count={min_count} times")
        return cls(sorted(kept, key=lambda a: (-counts[a], a)))

    def __len__(self) -> int:
        return len(self.answers)

    def __contains__(self, answer: str) -> bool:
        return answer in self._index

    def label(self, answer: str) -> int:
        return self._index.get(answer, IGNORE_INDEX)

    def list_parts(self) -> dict[int, list[int]]:
        """For each answer that lists several (``"chair, table"``), the labels of its parts that are
        answers of their own, in the order listed; answers with no such part are left out."""
        parts = {}
        for label, answer in enumerate(self.answers):
            if LIST_SEPARATOR in answer:
                known = [self._index[p.strip()] for p in answer.split(LIST_SEPARATOR) if p.strip() in self._index]
                if known:
                    parts[label] = known
        return parts
