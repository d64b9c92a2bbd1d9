"""easy-VQA: the embedded default data set, shipped inside the ``easy-vqa`` PyPI package.

38,575 training and 9,673 test questions about 4,000 / 1,000 synthetic 64x64 PNG images of one
coloured shape each; 13 answers (yes/no, 3 shapes, 8 colours). Materialising it needs no network.
Licence: MIT (the easy-VQA package).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vqalab.data.collect import RecordCollector


@dataclass(frozen=True)
class EasyVQAConfig:
    """easy-VQA has one source, the installed package: nothing to configure."""


def materialize(config: EasyVQAConfig, *, collector: RecordCollector, downloads: Path) -> None:
    try:
        import easy_vqa
    except ImportError:
        raise ImportError("dataset easy_vqa needs the easy-vqa package: pip install easy-vqa") from None

    readers = {
        "train": (easy_vqa.get_train_questions, easy_vqa.get_train_image_paths),
        "test": (easy_vqa.get_test_questions, easy_vqa.get_test_image_paths),
    }
    for split, (read_questions, read_image_paths) in readers.items():
        for image_id, path in sorted(read_image_paths().items()):
            collector.add_image_file(f"images/{split}/{image_id}.png", Path(path))
        for index, (question, answer, image_id) in enumerate(zip(*read_questions())):
            collector.add(id=f"easy_vqa-{split}-{index}", image=f"images/{split}/{image_id}.png", question=question,
                          answer=answer, split=split, where=f"easy_vqa {split} questions.json[{index}]")


CONFIG_CLASS = EasyVQAConfig
