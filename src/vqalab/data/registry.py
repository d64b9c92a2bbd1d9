"""Data set registry: name -> its config class and the function that reads it into records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vqalab.data import daquar, easy_vqa, folder, path_vqa, slake, vqa_rad


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
