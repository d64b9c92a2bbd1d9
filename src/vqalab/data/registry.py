"""Data set registry: name -> its config class and the function that reads it into records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from vqalab.data import daquar, easy_vqa, folder, path_vqa, slake, vqa_rad
from vqalab.data.collect import MANIFEST_FILE, RecordCollector
from vqalab.io import atomic_path, write_json


@dataclass(frozen=True)
class DatasetSpec:
    config_class: type
    # materialize(config, *, collector, downloads): feeds every row to the collector.
    materialize: Callable[..., None]


DATASETS = {
    "easy_vqa": DatasetSpec(easy_vqa.EasyVQAConfig, easy_vqa.materialize),
    "vqa_rad": DatasetSpec(vqa_rad.VQARadConfig, vqa_rad.materialize),
    "slake": DatasetSpec(slake.SlakeConfig, slake.materialize),
    "path_vqa": DatasetSpec(path_vqa.PathVQAConfig, path_vqa.materialize),
    "daquar": DatasetSpec(daquar.DaquarConfig, daquar.materialize),
    "folder": DatasetSpec(folder.FolderConfig, folder.materialize),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choices: {sorted(DATASETS)}") from None


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


def dataset_config(dataset: str, mapping: dict):
    """The typed config of ``datasets.<dataset>`` (as a params file holds it)."""
    from vqalab.config import from_mapping

    return from_mapping(get_dataset(dataset).config_class, mapping, f"datasets.{dataset}")
