"""The user's own data: a JSONL or CSV file of records plus a folder of images.

Each row needs ``image`` (a path relative to the image folder), ``question`` and ``answer``;
optional: ``id``, ``split`` (train / val / test), ``answer_type`` (closed / open; derived from
yes/no answers when absent) and ``question_type``. Without a ``split`` column a test split of
``test_fraction`` of the images is carved out, by image.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import GroupShuffleSplit

from vqalab.data.collect import RecordCollector
from vqalab.data.fetch import local_source

REQUIRED = ("image", "question", "answer")
OPTIONAL = ("id", "split", "answer_type", "question_type")


@dataclass(frozen=True)
class FolderConfig:
    records: str | None = None  # a .jsonl or .csv file
    images: str | None = None  # the folder that image paths are relative to
    test_fraction: float = 0.2  # used only when the records have no split column
    split_seed: int = 0

    def __post_init__(self) -> None:
        if not self.records or not self.images:
            raise ValueError("dataset folder needs datasets.folder.records (a .jsonl or .csv file) and "
                             "datasets.folder.images (a folder)")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


def read_rows(path: Path, *, required: tuple[str, ...] = REQUIRED) -> list[tuple[str, dict]]:
    """(where, row) for each record of a .jsonl or .csv file; a CSV header must hold ``required``
    (``vqalab predict`` reads questions without answers)."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(required) - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"{path}: the header lacks the column(s) {sorted(missing)}; found {reader.fieldnames}")
            return [(f"{path.name}:{reader.line_num}", {k: v for k, v in row.items() if k is not None}) for row in reader]
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path.name}:{line_no} is not valid JSON ({err})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path.name}:{line_no} must be a JSON object, got {type(row).__name__}")
            rows.append((f"{path.name}:{line_no}", row))
        return rows
    raise ValueError(f"{path}: records must be a .jsonl or .csv file")


def materialize(config: FolderConfig, *, collector: RecordCollector, downloads: Path) -> None:
    records_path = local_source(config.records, param="datasets.folder.records")
    image_dir = local_source(config.images, param="datasets.folder.images")
    rows = read_rows(records_path)
    for where, row in rows:
        unknown = set(row) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise ValueError(f"{where}: unknown column(s) {sorted(unknown)}; allowed: {[*REQUIRED, *OPTIONAL]}")
    with_split = [bool(str(row.get("split") or "").strip()) for _, row in rows]
    if any(with_split) and not all(with_split):
        first = next(where for (where, _), has in zip(rows, with_split) if not has)
        raise ValueError(f"{first}: some records have a split and others do not; give every record one, or none")
    splits = ([str(row["split"]).strip().lower() for _, row in rows] if all(with_split)
              else carve_test_split([str(row.get("image")) for _, row in rows], config))
    for index, ((where, row), split) in enumerate(zip(rows, splits)):
        image = str(row.get("image") or "").strip()
        rel = f"images/{image}"
        if image:
            collector.add_image_file(rel, image_dir / image)
        collector.add(id=str(row.get("id") or f"folder-{index}"), image=rel, question=row.get("question"),
                      answer=row.get("answer"), split=split, answer_type=row.get("answer_type"),
                      question_type=row.get("question_type"), where=where)
    referenced = {str(row.get("image") or "").strip() for _, row in rows}
    collector.ignore("unreferenced_image_files", sum(
        1 for path in image_dir.rglob("*") if path.is_file() and path.relative_to(image_dir).as_posix() not in referenced))


def carve_test_split(images: list[str], config: FolderConfig) -> list[str]:
    splitter = GroupShuffleSplit(n_splits=1, test_size=config.test_fraction, random_state=config.split_seed)
    _, test_idx = next(splitter.split(images, groups=images))
    test = set(test_idx)
    return ["test" if i in test else "train" for i in range(len(images))]
