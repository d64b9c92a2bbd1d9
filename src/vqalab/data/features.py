"""Cached outputs of frozen encoders, computed once by the features stage.

A frozen encoder maps an image or a question to the same features every epoch, so the features
stage runs it once per distinct image and question and training reads the result. The cache stores
the frozen encoders' weight fingerprints: a model whose encoders differ from the ones that made the
cache is refused instead of silently trained on stale features.

Layout: ``features.json`` (fingerprints, the spec they were made from, the question list) and
``features.safetensors`` (``image``: one row per processed image, in ``image_index.json`` order;
``question``: one row per distinct question), stored as float16 to halve their size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from vqalab.io import atomic_path, read_json, write_json
from vqalab.progress import progress

INFO_FILE = "features.json"
TENSORS_FILE = "features.safetensors"
STORAGE_DTYPE = torch.float16


@dataclass
class CachedFeatures:
    fingerprints: dict[str, str]
    image: torch.Tensor | None = None
    question: torch.Tensor | None = None
    question_row: dict[str, int] | None = None

    @classmethod
    def load(cls, directory: str | Path) -> "CachedFeatures":
        directory = Path(directory)
        if not (directory / INFO_FILE).is_file():
            raise FileNotFoundError(f"{directory} holds no cached features ({INFO_FILE} is missing): run the features stage")
        info = read_json(directory / INFO_FILE)
        tensors = load_file(directory / TENSORS_FILE) if info["fingerprints"] else {}
        return cls.from_tensors(tensors, info["fingerprints"], info["questions"])

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], fingerprints: dict[str, str],
                     questions: list[str]) -> "CachedFeatures":
        """From ``compute_features``' output (``questions`` in the order it was given them). The
        features are stored as float16 but held as float32: converting a float16 batch on the CPU
        took 5x longer than the training step itself (611 vs 111 ms for 64 x 49 x 1280 tokens)."""
        as_float = {k: v.float() for k, v in tensors.items()}
        return cls(fingerprints=fingerprints, image=as_float.get("image"), question=as_float.get("question"),
                   question_row={q: i for i, q in enumerate(questions)})

    def check(self, model, *, where: str | Path) -> None:
        """Fail unless these are exactly the features of ``model``'s frozen encoders."""
        expected = model.feature_fingerprints()
        if set(expected) != set(self.fingerprints) or any(expected[k] != self.fingerprints[k] for k in expected):
            raise ValueError(f"the cached features in {where} were computed for other frozen encoders "
                             f"({sorted(self.fingerprints)}) than this model's ({sorted(expected)}) or with other weights: "
                             f"rerun the features stage (dvc repro)")

    def item_features(self, question: str, image_row: int) -> dict:
        features = {}
        if self.image is not None:
            features["image_features"] = self.image[image_row]
        if self.question is not None:
            if question not in self.question_row:
                raise KeyError(f"question {question!r} is not in the cached features: rerun the features stage (dvc repro)")
            features["question_features"] = self.question[self.question_row[question]]
        return features

    def __bool__(self) -> bool:
        return bool(self.fingerprints)

    def save(self, directory: str | Path, *, spec: dict) -> None:
        """Write the cache (float16, as computed) with the ``spec`` it was made from, atomically."""
        tensors = {name: t.to(STORAGE_DTYPE).contiguous() for name, t in (("image", self.image), ("question", self.question))
                   if t is not None}
        questions = sorted(self.question_row or {}, key=self.question_row.get) if "question" in tensors else []
        with atomic_path(directory, is_dir=True) as tmp:
            if tensors:
                save_file(tensors, tmp / TENSORS_FILE)
            write_json(tmp / INFO_FILE, {"spec": spec, "fingerprints": self.fingerprints, "questions": questions,
                                         "shapes": {k: list(v.shape) for k, v in tensors.items()}})


@torch.no_grad()
def compute_features(model, images: np.ndarray, questions: list[str], *, batch_size: int,
                     device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Run ``model``'s frozen encoders over every image row and every question."""
    model.to(device).eval()
    fingerprints = model.feature_fingerprints()
    tensors = {}
    if "image" in fingerprints:
        rows = [model.encode_image_features(torch.from_numpy(np.array(images[start:start + batch_size])).to(device))
                .to(STORAGE_DTYPE).cpu()
                for start in progress(range(0, len(images), batch_size), desc="image features", unit="batch")]
        tensors["image"] = torch.cat(rows)
    if "question" in fingerprints:
        rows = [model.encode_question_features(questions[start:start + batch_size]).to(STORAGE_DTYPE).cpu()
                for start in progress(range(0, len(questions), batch_size), desc="question features", unit="batch")]
        tensors["question"] = torch.cat(rows)
    return tensors, fingerprints
