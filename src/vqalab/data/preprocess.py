"""Preprocess: validation split (by image or by question), answer vocabulary, resized image tensor, statistics.

The processed folder holds everything training needs, so no epoch decodes or resizes an image:
``records.jsonl`` (with the ``val`` split carved out of ``train``), ``answers.json`` (the
vocabulary), ``images.npy`` (uint8, N x 3 x S x S) and ``image_index.json`` (row -> image path).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from sklearn.model_selection import GroupShuffleSplit

from vqalab.config import check_resize
from vqalab.data.collect import MANIFEST_FILE
from vqalab.data.schema import ANSWERS_FILE, IMAGE_INDEX_FILE, IMAGES_FILE, RECORDS_FILE, Record, read_records
from vqalab.data.vocab import AnswerVocab
from vqalab.io import read_json, write_json, write_jsonl
from vqalab.progress import progress

log = logging.getLogger(__name__)



def validation_unit(records: list[Record], val_split: str) -> str:
    """What the validation split is drawn by: ``image`` or ``question``, as asked, or for ``auto``
    as the data set's test split was drawn. Validation estimates test accuracy, so it should hold
    the kind of question the test holds: where most test questions are about images that training
    questions are about too (VQA-RAD: 446 of 451), a validation split by image would only measure
    unseen images and would penalise what the test rewards; where the test images are new (DAQUAR,
    easy-VQA), a split by question would reward memorising images the test never shows."""
    if val_split != "auto":
        return val_split
    train_images = {r.image for r in records if r.split == "train"}
    test = [r for r in records if r.split == "test"]
    seen = sum(r.image in train_images for r in test)
    return "question" if test and seen > len(test) / 2 else "image"


def split_train_val(records: list[Record], *, val_fraction: float, val_split: str,
                    seed: int) -> tuple[list[Record], str]:
    """Move a seeded share of the training records to ``val``; returns them and what the split was
    drawn by (``validation_unit``).

    By image, every question of a validation image goes to validation. By question, a data set's
    question groups (``Record.group``: rephrasings of one question) stay together, so no question is
    validated on its own paraphrase - except ``train_only`` records, which stay in train whatever is
    drawn, as they do for test questions (VQA-RAD ``frame``: 284 test questions have their frame in
    train, so validation questions keep theirs too). A data set that ships its own validation split
    (SLAKE, PathVQA) keeps it.
    """
    if any(r.split == "val" for r in records):
        return records, "given"
    unit = validation_unit(records, val_split)
    train = [r for r in records if r.split == "train" and not r.train_only]
    groups = [r.image if unit == "image" else (r.group or r.id) for r in train]
    if len(set(groups)) < 2:
        raise ValueError(f"cannot carve a validation split by {unit} out of {len(set(groups))} training {unit}(s)")
    splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
    _, val_idx = next(splitter.split(train, groups=groups))
    val_ids = {train[i].id for i in val_idx}
    return [dataclasses.replace(r, split="val") if r.id in val_ids else r for r in records], unit


def to_square(img: Image.Image, size: int, mode: str) -> Image.Image:
    """``squash``: stretch to size x size; ``crop``: shorter side to ``size``, centre crop (the
    torchvision and CLIP processors); ``pad``: longer side to ``size``, aspect ratio kept, centred on
    black (for processors that keep the aspect ratio, such as ViLT's and Qwen2-VL's)."""
    if mode == "squash":
        return img.resize((size, size), Image.Resampling.BICUBIC)
    width, height = img.size
    scale = size / (min(width, height) if mode == "crop" else max(width, height))
    resized = img.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BICUBIC)
    if mode == "crop":
        left, top = (resized.width - size) // 2, (resized.height - size) // 2
        return resized.crop((left, top, left + size, top + size))
    canvas = Image.new("RGB", (size, size))
    canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    return canvas


IMAGE_READ_ERRORS = (FileNotFoundError, UnidentifiedImageError, OSError)


def read_square(path: Path, size: int, mode: str) -> np.ndarray:
    """One image as the pipeline feeds it to a model: RGB, made square by ``mode``, uint8 3 x size x size.

    Training (through ``resize_images``) and ``vqalab predict`` both read images here, so a model
    never sees an image prepared differently from those it learned from. Raises one of
    ``IMAGE_READ_ERRORS`` for a missing or undecodable file.
    """
    with Image.open(path) as img:
        return np.asarray(to_square(img.convert("RGB"), size, mode)).transpose(2, 0, 1)


def resize_images(raw_dir: Path, image_paths: list[str], size: int, mode: str = "squash") -> np.ndarray:
    """Decode and resize every image once, to a uint8 array of shape N x 3 x size x size."""
    check_resize(mode)
    out = np.empty((len(image_paths), 3, size, size), dtype=np.uint8)
    for row, rel in enumerate(progress(image_paths, desc=f"resize to {size}px ({mode})", unit="img")):
        path = raw_dir / rel
        try:
            out[row] = read_square(path, size, mode)
        except IMAGE_READ_ERRORS as err:
            raise ValueError(f"cannot read image {path} ({err}); fix or remove it and rerun download") from None
    return out


def content_hashes(raw_dir: Path, image_paths: list[str]) -> dict[str, str]:
    return {rel: hashlib.sha1((raw_dir / rel).read_bytes()).hexdigest() for rel in image_paths}


def split_statistics(records: list[Record], vocab: AnswerVocab, hashes: dict[str, str] | None = None) -> dict:
    """Questions, images and answers per split; how much of each split a classifier can answer;
    the long tail of training answers; validation and test questions whose rephrasing is in train;
    and images shared between splits (by path and, given ``hashes``, by content: the same picture
    stored twice)."""
    by_split = {s: [r for r in records if r.split == s] for s in ("train", "val", "test")}
    images = {s: {r.image for r in rs} for s, rs in by_split.items()}
    train_counts = Counter(r.answer for r in by_split["train"])
    train_groups = {r.group for r in by_split["train"] if r.group is not None}
    stats: dict = {
        "answer_vocabulary": len(vocab),
        "train_answers": {
            "distinct": len(train_counts),
            "seen_once": sum(n == 1 for n in train_counts.values()),
            "seen_2_to_10": sum(2 <= n <= 10 for n in train_counts.values()),
            "seen_over_10": sum(n > 10 for n in train_counts.values()),
            "top10_share_of_questions": round(sum(n for _, n in train_counts.most_common(10)) / max(len(by_split["train"]), 1), 4),
        },
    }
    for split, rs in by_split.items():
        types = Counter(r.answer_type for r in rs)
        unseen = sum(r.answer not in vocab for r in rs)
        stats[split] = {
            "questions": len(rs),
            "images": len(images[split]),
            "answers": len({r.answer for r in rs}),
            "closed": types["closed"],
            "open": types["open"],
            "answers_outside_vocabulary": unseen,
            # The ceiling of any classifier over the training answers.
            "answer_coverage": round(1 - unseen / len(rs), 4) if rs else None,
        }
        if split != "train":
            # Questions whose rephrasing (same group) is in train: VQA-RAD frame's test and validation.
            stats[split]["rephrased_in_train"] = sum(r.group in train_groups for r in rs)
    # Images in two splits, by path and, given hashes, by content (the same picture stored twice).
    keys = {"path": images}
    if hashes is not None:
        keys["content"] = {s: {hashes[i] for i in imgs} for s, imgs in images.items()}
    for kind, sets in keys.items():
        suffix = "" if kind == "path" else "_by_content"
        stats[f"images_shared_train_val{suffix}"] = len(sets["train"] & sets["val"])
        stats[f"test_images_seen_in_train_or_val{suffix}"] = len(sets["test"] & (sets["train"] | sets["val"]))
    return stats


def preprocess(raw_dir: Path, out_dir: Path, *, image_size: int, resize: str, val_fraction: float,
               val_split: str, min_answer_count: int, seed: int) -> dict:
    manifest = read_json(raw_dir / MANIFEST_FILE)
    records = read_records(raw_dir / RECORDS_FILE)
    records, val_unit = split_train_val(records, val_fraction=val_fraction, val_split=val_split, seed=seed)
    log.info("validation split drawn by %s (preprocess.val_split: %s)", val_unit, val_split)
    vocab = AnswerVocab.build((r.answer for r in records if r.split == "train"), min_count=min_answer_count)
    image_paths = sorted({r.image for r in records})
    images = resize_images(raw_dir, image_paths, image_size, resize)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / RECORDS_FILE, (r.to_dict() for r in records))
    write_json(out_dir / ANSWERS_FILE, vocab.answers)
    write_json(out_dir / IMAGE_INDEX_FILE, image_paths)
    np.save(out_dir / IMAGES_FILE, images)
    stats = split_statistics(records, vocab, content_hashes(raw_dir, image_paths))
    stats["val_split"] = val_unit
    stats["image_size"] = image_size
    stats["resize"] = resize
    stats["skipped_records"] = manifest.get("skipped", {})
    log.info("split statistics: %s", stats)
    return stats
