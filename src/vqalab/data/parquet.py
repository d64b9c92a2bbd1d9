"""The Hugging Face parquet layout shared by VQA-RAD and PathVQA: columns image, question, answer.

Files are read in record batches, so memory stays bounded however large the data set (PathVQA
holds ~32k questions). The same image is stored once per question in these files: images are
written once, named by a hash of their bytes, which also makes identical images in different
splits visible.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from vqalab.data.collect import RecordCollector

BATCH_ROWS = 256
SPLIT_PREFIXES = {"train": "train", "validation": "val", "val": "val", "test": "test"}


def split_of(path: Path) -> str | None:
    name = path.name.lower()
    for prefix, split in SPLIT_PREFIXES.items():
        if name.startswith(prefix):
            return split
    return None


def image_name(data: bytes) -> str:
    suffix = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"
    return f"images/{hashlib.sha1(data).hexdigest()[:20]}{suffix}"


def read_parquet_vqa(root: Path, collector: RecordCollector, *, dataset: str) -> None:
    import pyarrow.parquet as pq

    files = sorted(p for p in root.rglob("*.parquet") if split_of(p))
    if not files:
        raise FileNotFoundError(f"no parquet file under {root} is named train*, validation* or test*")
    for path in files:
        split = split_of(path)
        parquet = pq.ParquetFile(path)
        missing = {"image", "question", "answer"} - set(parquet.schema_arrow.names)
        if missing:
            raise ValueError(f"{path} lacks the column(s) {sorted(missing)}; expected image, question, answer")
        row = 0
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=["image", "question", "answer"]):
            for item in batch.to_pylist():
                where = f"{path.name} row {row}"
                image = item["image"] or {}
                data = image.get("bytes") if isinstance(image, dict) else None
                rel = image_name(data) if data else f"images/missing-{path.stem}-{row}"
                collector.add_image_bytes(rel, data, shown=f"in {where}")
                collector.add(id=f"{dataset}-{path.stem}-{row}", image=rel, question=item["question"],
                              answer=item["answer"], split=split, where=where)
                row += 1
