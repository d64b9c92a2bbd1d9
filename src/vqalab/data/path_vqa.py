"""PathVQA (He et al., 2020): pathology images from textbooks and PEIR, 32.8k questions.

Source: the Hugging Face data set ``flaviagiammarino/path-vqa`` (parquet; 19.7k / 6.3k / 6.7k
train / validation / test questions; its own validation split is used as ``val``), or a local
folder with its parquet files. Licence: MIT, as stated on the data set card. No answer_type is
given: yes/no answers count as closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vqalab.data.collect import RecordCollector
from vqalab.data.fetch import hf_dataset_snapshot, local_copy
from vqalab.data.parquet import read_parquet_vqa

HF_REPO = "flaviagiammarino/path-vqa"
PARAM = "dataset.source"


@dataclass(frozen=True, kw_only=True)
class PathVQAConfig:
    source: str  # hf | a local folder or archive holding the parquet files


def materialize(config: PathVQAConfig, *, collector: RecordCollector, downloads: Path) -> None:
    if config.source == "hf":
        root = hf_dataset_snapshot(HF_REPO, param=PARAM, allow_patterns=["*.parquet", "*.md"])
    else:
        root = local_copy(config.source, param=PARAM, downloads=downloads)
    read_parquet_vqa(root, collector, dataset="path_vqa")


CONFIG_CLASS = PathVQAConfig
