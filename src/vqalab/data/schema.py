"""The one record schema shared by every data set, and its JSONL reader with validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vqalab.io import read_jsonl

SPLITS = ("train", "val", "test")
ANSWER_TYPES = ("closed", "open")
RECORDS_FILE = "records.jsonl"
# A processed folder (the preprocess stage's output, ``vqalab.data.dataset.ProcessedData``) holds the
# records beside the answer vocabulary, the resized images and the image paths in their order.
ANSWERS_FILE = "answers.json"
IMAGES_FILE = "images.npy"
IMAGE_INDEX_FILE = "image_index.json"


@dataclass(frozen=True)
class Record:
    """One question about one image.

    ``image`` is relative to the data set folder that holds the records file; ``answer`` is the
    normalised answer (see ``normalize_answer``) and ``answer_raw`` the text as published.
    ``group`` joins records that ask one question in other words (VQA-RAD's rephrasings and
    template frames): a validation split drawn by question keeps a group together. A ``train_only``
    record is one the data set adds to train whatever the split, as a rephrasing of another record
    (VQA-RAD ``frame``: the papers add every record's frame, test records' too): a validation split
    never takes it, so a validation question keeps its rephrasing in train as a test question does.
    """

    id: str
    image: str
    question: str
    answer: str
    answer_raw: str
    split: str
    answer_type: str
    question_type: str | None = None
    group: str | None = None
    train_only: bool = False

    def __post_init__(self) -> None:
        for name in ("id", "image", "question", "answer"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"record {self.id!r}: field {name!r} must be non-empty text, got {value!r}")
        if self.split not in SPLITS:
            raise ValueError(f"record {self.id!r}: split {self.split!r} is not one of {SPLITS}")
        if self.answer_type not in ANSWER_TYPES:
            raise ValueError(f"record {self.id!r}: answer_type {self.answer_type!r} is not one of {ANSWER_TYPES}")
        if not isinstance(self.train_only, bool):
            raise ValueError(f"record {self.id!r}: train_only must be true or false, got {self.train_only!r}")
        if self.train_only and self.split != "train":
            raise ValueError(f"record {self.id!r}: a train_only record must have split 'train', got {self.split!r}")

    def to_dict(self) -> dict:
        return asdict(self)


_FIELDS = {f.name for f in fields(Record)}


def read_records(path: str | Path) -> list[Record]:
    """Read and validate a records JSONL file; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the stage that writes it (dvc repro) first")
    records, seen = [], set()
    for line_no, row in enumerate(read_jsonl(path), start=1):
        unknown = set(row) - _FIELDS
        if unknown:
            raise ValueError(f"{path}:{line_no}: unknown fields {sorted(unknown)}; expected {sorted(_FIELDS)}")
        try:
            record = Record(**row)
        except TypeError as err:
            raise ValueError(f"{path}:{line_no}: {err}") from None
        except ValueError as err:
            raise ValueError(f"{path}:{line_no}: {err}") from None
        if record.id in seen:
            raise ValueError(f"{path}:{line_no}: duplicate record id {record.id!r}")
        seen.add(record.id)
        records.append(record)
    return records
