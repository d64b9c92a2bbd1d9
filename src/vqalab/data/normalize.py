"""Answer normalisation: the one place where answer strings are made comparable.

Every data set loader stores the normalised answer beside the raw one, and every metric compares
normalised strings, so "Yes." and "yes", "two" and "2", "the left lung" and "left lung" count as
the same answer everywhere in the project. ``normalize_answer`` is idempotent.
"""

from __future__ import annotations

import re
import unicodedata

_NUMBER_WORDS = {
    "zero": "0", "none": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11",
    "twelve": "12", "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16",
    "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
}
_ARTICLES = {"a", "an", "the"}
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "`": "'"})
# Punctuation that carries no meaning in a short answer. Kept: hyphen, slash, apostrophe,
# comma (it separates the items of a list answer), and a period between digits (3.5 cm).
_DROP = re.compile(r"[!\"#$%&()*+:;<=>?@\[\\\]^_{|}~]")
_PERIOD_NOT_DECIMAL = re.compile(r"(?<!\d)\.|\.(?!\d)")
_SPACE_AROUND_COMMA = re.compile(r"\s*,\s*")
_SPACES = re.compile(r"\s+")


def normalize_answer(answer: object) -> str:
    """Return the canonical form of an answer (any JSON scalar; numbers become text)."""
    if answer is None or isinstance(answer, (bool, list, dict)):
        raise TypeError(f"an answer must be text or a number, got {answer!r}")
    text = unicodedata.normalize("NFKC", str(answer)).translate(_QUOTES).lower()
    text = _DROP.sub(" ", text)
    text = _PERIOD_NOT_DECIMAL.sub(" ", text)
    items = []
    for item in _SPACE_AROUND_COMMA.split(text):
        words = [_NUMBER_WORDS.get(w, w) for w in item.split() if w not in _ARTICLES]
        if words:
            items.append(" ".join(words))
    return _SPACES.sub(" ", ", ".join(items)).strip()


def answer_type_from_answer(normalized_answer: str) -> str:
    """The rule for data sets that do not label question types: yes/no answers are closed."""
    return "closed" if normalized_answer in {"yes", "no"} else "open"
