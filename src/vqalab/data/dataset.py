"""Torch data sets over a processed folder (see ``vqalab.data.preprocess``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vqalab.data.features import CachedFeatures
from vqalab.data.schema import ANSWERS_FILE, IMAGE_INDEX_FILE, IMAGES_FILE, RECORDS_FILE, Record, read_records
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
                 features: CachedFeatures | None = None, *, image_rows: list[int] | None = None):
        self.records = records
        self.features = features
        self.images = images
        self.image_row = image_row
        self.vocab = vocab
        # The image (row of ``images``) each record is shown with: its own, unless shuffled.
        self.image_rows = image_rows if image_rows is not None else [image_row[r.image] for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def with_shuffled_images(self, seed: int = 0) -> VQADataset:
        """The same questions, each shown with another question's image (a fixed permutation drawn
        from ``seed``): how much a model's answers depend on the image."""
        order = np.random.default_rng(seed).permutation(len(self.records))
        return VQADataset(self.records, self.images, self.image_row, self.vocab, self.features,
                          image_rows=[self.image_rows[i] for i in order])

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        row = self.image_rows[index]
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

    def fully_cached(self) -> bool:
        """Whether every model input is a cached feature (both encoders frozen): then a batch is
        the cached rows and the labels, and ``IndexedBatches`` builds it without per-item Python."""
        return bool(self.features) and self.features.image is not None and self.features.question is not None

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


class IndexedBatches:
    """The batches of a fully cached data set, by tensor indexing: the feature tables stay on
    ``device`` whole and a batch is a gather - no DataLoader, no per-item Python, no host copy.

    A batch holds what a fusion classifier's ``collate`` makes of cached items
    (``image_features``, ``question_features``, ``labels``), in the same order: shuffled batches
    draw ``torch.randperm`` from ``generator`` as PyTorch's ``RandomSampler`` does.

    ``by_image``: each image's questions come together (images in random order, their questions
    in random order), and a batch holds each of its distinct images' features once, with
    ``image_index`` giving every question's row among them: a model that runs trainable image
    stages then runs them once per image (DAQUAR has about 8.5 questions an image), not per question.
    """

    def __init__(self, dataset: VQADataset, *, batch_size: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 by_image: bool = False):
        if not dataset.fully_cached():
            raise ValueError("IndexedBatches needs cached image and question features for every record")
        features = dataset.features
        self.batch_size, self.shuffle, self.generator, self.by_image = batch_size, shuffle, generator, by_image
        self.image = features.image.to(device)
        self.question = features.question.to(device)
        self.image_rows = torch.tensor(dataset.image_rows, device=device)
        self.question_rows = torch.tensor([features.question_row[r.question] for r in dataset.records], device=device)
        self.labels = torch.tensor([dataset.vocab.label(r.answer) for r in dataset.records], device=device)

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.labels.device)
        if self.by_image:
            order = self.grouped_by_image(order)
        for start in range(0, n, self.batch_size):
            index = order[start:start + self.batch_size]
            batch = {"labels": self.labels[index], "question_features": self.question[self.question_rows[index]]}
            if self.by_image:
                images, batch["image_index"] = self.image_rows[index].unique(return_inverse=True)
                batch["image_features"] = self.image[images]
            else:
                batch["image_features"] = self.image[self.image_rows[index]]
            yield batch

    def grouped_by_image(self, order: torch.Tensor) -> torch.Tensor:
        """``order`` rearranged so each image's questions are adjacent, keeping their order within an
        image; the images come in a random order (from ``generator``) when shuffling, else by row."""
        n_images = int(self.image_rows.max()) + 1
        rank = torch.arange(n_images, device=order.device)
        if self.shuffle:
            rank = torch.randperm(n_images, generator=self.generator).to(order.device)
        return order[torch.sort(rank[self.image_rows[order]], stable=True).indices]
