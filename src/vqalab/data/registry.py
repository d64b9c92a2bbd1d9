"""Data set registry: name -> the module that reads it, imported only when it is chosen.

Each data set module names its config class ``CONFIG_CLASS`` and has ``materialize(config, *,
collector, downloads)``, which feeds every row of the data set to the collector. A stage that reads
one data set imports only its module, and lists only it among its DVC dependencies
(``src/vqalab/data/${dataset.name}.py``). conf/dataset/ holds one file per data set, named as here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from vqalab.config import from_mapping
from vqalab.data.collect import MANIFEST_FILE, RecordCollector
from vqalab.io import atomic_path, write_json

DATASETS = {
    "easy_vqa": "vqalab.data.easy_vqa",
    "vqa_rad": "vqalab.data.vqa_rad",
    "slake": "vqalab.data.slake",
    "path_vqa": "vqalab.data.path_vqa",
    "daquar": "vqalab.data.daquar",
    "folder": "vqalab.data.folder",
}


@dataclass(frozen=True)
class DatasetSpec:
    config_class: type
    # materialize(config, *, collector, downloads): feeds every row to the collector.
    materialize: Callable[..., None]


def get_dataset(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choices: {sorted(DATASETS)}")
    module = importlib.import_module(DATASETS[name])
    return DatasetSpec(module.CONFIG_CLASS, module.materialize)


def download(name: str, config, *, out: Path, downloads: Path, on_bad_record: str = "error",
             max_images_per_split: int | None = None) -> dict:
    """Read data set ``name`` from its source into ``out`` (records, images, manifest), atomically."""
    with atomic_path(out, is_dir=True) as tmp:
        collector = RecordCollector(tmp, on_bad_record=on_bad_record, final_dir=out)
        get_dataset(name).materialize(config, collector=collector, downloads=downloads)
        counts = collector.finish(max_images_per_split=max_images_per_split)
        manifest = {"dataset": name, "config": asdict(config), **counts}
        write_json(tmp / MANIFEST_FILE, manifest)
    return manifest


def chosen_dataset_config(params):
    """The typed config of the chosen data set (``vqalab.params.Params``: ``dataset``, ``dataset_config``)."""
    return from_mapping(get_dataset(params.dataset).config_class, params.dataset_config, "dataset")
