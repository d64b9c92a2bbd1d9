"""easy-VQA: the embedded default data set, shipped inside the ``easy-vqa`` PyPI package.

38,575 training and 9,673 test questions about 4,000 / 1,000 synthetic 64x64 PNG images of one
coloured shape each; 13 answers (yes/no, 3 shapes, 8 colours). Materialising it needs no network.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

from vqalab.data.normalize import answer_type_from_answer, normalize_answer
from vqalab.data.schema import RECORDS_FILE, Record
from vqalab.io import write_jsonl

log = logging.getLogger(__name__)


def materialize(out_dir: Path, *, max_images_per_split: int | None = None) -> dict:
    """Copy the packaged images into ``out_dir/images`` and write ``out_dir/records.jsonl``."""
    try:
        import easy_vqa
    except ImportError:
        raise ImportError("dataset easy_vqa needs the easy-vqa package: pip install easy-vqa") from None

    readers = {
        "train": (easy_vqa.get_train_questions, easy_vqa.get_train_image_paths),
        "test": (easy_vqa.get_test_questions, easy_vqa.get_test_image_paths),
    }
    records: list[Record] = []
    counts: dict = {}
    for split, (read_questions, read_image_paths) in readers.items():
        image_paths = read_image_paths()
        kept_ids = sorted(image_paths)[:max_images_per_split]
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        for image_id in kept_ids:
            shutil.copyfile(image_paths[image_id], out_dir / "images" / split / f"{image_id}.png")
        kept = set(kept_ids)
        questions, answers, image_ids = read_questions()
        split_records = [
            Record(
                id=f"easy_vqa-{split}-{index}",
                image=f"images/{split}/{image_id}.png",
                question=question,
                answer=normalize_answer(answer),
                answer_raw=str(answer),
                split=split,
                answer_type=answer_type_from_answer(normalize_answer(answer)),
            )
            for index, (question, answer, image_id) in enumerate(zip(questions, answers, image_ids))
            if image_id in kept
        ]
        types = Counter(r.answer_type for r in split_records)
        counts[split] = {"questions": len(split_records), "images": len(kept_ids), **{f"questions_{t}": n for t, n in sorted(types.items())}}
        log.info("easy_vqa %s: %d questions on %d images (%s)", split, len(split_records), len(kept_ids), dict(types))
        records.extend(split_records)
    write_jsonl(out_dir / RECORDS_FILE, (r.to_dict() for r in records))
    return counts
