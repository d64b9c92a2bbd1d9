"""SLAKE (Liu et al., ISBI 2021): a bilingual radiology VQA set; the English questions are kept.

Source: the Hugging Face data set ``BoKelvin/SLAKE`` (``train.json``, ``validation.json``,
``test.json`` and ``imgs.zip``; its own validation split is used as ``val``), or a local folder
or archive with the same files. Licence: CC BY 4.0. Each question's ``answer_type``
(OPEN/CLOSED) and ``content_type`` (organ, position, abnormality, ...) are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vqalab.data.collect import RecordCollector
from vqalab.data.fetch import extract, hf_dataset_snapshot, local_copy

HF_REPO = "BoKelvin/SLAKE"
PARAM = "dataset.source"
SPLIT_FILES = {"train": "train.json", "val": "validation.json", "test": "test.json"}


@dataclass(frozen=True, kw_only=True)
class SlakeConfig:
    source: str  # hf | a local folder or archive with the SLAKE files


def materialize(config: SlakeConfig, *, collector: RecordCollector, downloads: Path) -> None:
    if config.source == "hf":
        root = hf_dataset_snapshot(HF_REPO, param=PARAM, allow_patterns=[*SPLIT_FILES.values(), "imgs.zip"])
    else:
        root = local_copy(config.source, param=PARAM, downloads=downloads)
    image_root = find_image_root(root, downloads)
    for split, name in SPLIT_FILES.items():
        json_path = root / name
        if not json_path.is_file():
            raise FileNotFoundError(f"{json_path} is missing: a SLAKE copy holds {sorted(SPLIT_FILES.values())} and imgs/")
        rows = json.loads(json_path.read_text(encoding="utf-8"))
        for index, row in enumerate(rows):
            if row.get("q_lang") != "en":
                continue
            rel = f"images/{row.get('img_name')}"
            collector.add_image_file(rel, image_root / str(row.get("img_name")))
            collector.add(id=f"slake-{split}-{row.get('qid')}", image=rel, question=row.get("question"),
                          answer=row.get("answer"), split=split, answer_type=row.get("answer_type"),
                          question_type=row.get("content_type"), where=f"{json_path.name}[{index}] (qid {row.get('qid')})")


def find_image_root(root: Path, downloads: Path) -> Path:
    """SLAKE's images live in ``imgs/`` (or in ``imgs.zip``, unpacked on first use)."""
    if (root / "imgs").is_dir():
        return root / "imgs"
    if (root / "imgs.zip").is_file():
        unpacked = extract(root / "imgs.zip", downloads / "slake_imgs")
        return unpacked / "imgs" if (unpacked / "imgs").is_dir() else unpacked
    raise FileNotFoundError(f"{root} holds neither imgs/ nor imgs.zip with the SLAKE images")


CONFIG_CLASS = SlakeConfig
