"""Data set registry: name -> function that materialises the data set into the record schema."""

from __future__ import annotations

from vqalab.data import easy_vqa

DATASETS = {
    "easy_vqa": easy_vqa.materialize,
}


def get_dataset(name: str):
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choices: {sorted(DATASETS)}") from None
