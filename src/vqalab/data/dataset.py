"""Torch data sets over a processed folder (see ``vqalab.data.preprocess``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vqalab.data.features import CachedFeatures
from vqalab.data.preprocess import ANSWERS_FILE, IMAGE_INDEX_FILE, IMAGES_FILE
from vqalab.data.schema import RECORDS_FILE, Record, read_records
from vqalab.data.vocab import AnswerVocab
from vqalab.io import read_json


class VQADataset(Dataset):
    """Items are ``{"image": uint8 3xHxW tensor, "question": str, "answer": str, "answer_type": str,
    "label": int}``.

    With ``features`` (cached outputs of frozen encoders), items also carry ``image_features``
    and/or ``question_features``, which the family's collator uses instead of pixels and text.

    Family collators turn a list of items into model inputs: classifiers read ``label`` (the
    answer's index in the vocabulary, or ``IGNORE_INDEX`` when it is outside), generative
    families the ``answer`` text.
    """

    def __init__(self, records: list[Record], images: np.ndarray, image_row: dict[str, int], vocab: AnswerVocab,
                 features: CachedFeatures | None = None):
        self.records = records
        self.features = features
        self.images = images
        self.image_row = image_row
        self.vocab = vocab

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        row = self.image_row[record.image]
        item = {
            "question": record.question,
            "answer": record.answer,
            "answer_type": record.answer_type,
            "label": self.vocab.label(record.answer),
        }
        if self.features:
            item.update(self.features.item_features(record.question, row))
        if "image_features" not in item:
            item["image"] = torch.from_numpy(np.array(self.images[row]))  # copy out of the memory map
        return item

    def question_features(self) -> torch.Tensor:
        """The cached question features of every record, in order (for closed-form fits)."""
        if not self.features or self.features.question is None:
            raise ValueError("these records have no cached question features: the text encoder is not frozen")
        return self.features.question[[self.features.question_row[r.question] for r in self.records]]


@dataclass
class ProcessedData:
    records: list[Record]
    vocab: AnswerVocab
    images: np.ndarray
    image_row: dict[str, int]

    @classmethod
    def load(cls, processed_dir: str | Path) -> "ProcessedData":
        processed_dir = Path(processed_dir)
        image_paths = read_json(processed_dir / IMAGE_INDEX_FILE)
        return cls(
            records=read_records(processed_dir / RECORDS_FILE),
            vocab=AnswerVocab(read_json(processed_dir / ANSWERS_FILE)),
            # Memory-mapped: large data sets at 224 px or more need not fit in memory.
            images=np.load(processed_dir / IMAGES_FILE, mmap_mode="r"),
            image_row={path: row for row, path in enumerate(image_paths)},
        )

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def split(self, name: str, features: CachedFeatures | None = None) -> VQADataset:
        records = [r for r in self.records if r.split == name]
        if not records:
            raise ValueError(f"the processed data holds no {name!r} records")
        return VQADataset(records, self.images, self.image_row, self.vocab, features)
