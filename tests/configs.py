"""Configs for the tests, from the project's own conf/ (as lightning-hydra-template's tests do):
the values a run would get, with what a test changes (a smaller model, a local source)."""

from __future__ import annotations

import functools
from pathlib import Path

from vqalab.config import from_mapping
from vqalab.data.registry import get_dataset
from vqalab.models.registry import get_config_class
from vqalab.params import CONF_DIR, composed

ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def _composed(overrides: tuple[str, ...]) -> dict:
    return composed(ROOT / CONF_DIR, list(overrides))


def composed_params(*overrides: str) -> dict:
    """params.yaml as `dvc exp run -S <overrides>` composes it (a fresh copy)."""
    import copy

    return copy.deepcopy(_composed(tuple(overrides)))


def family_config(model: str, *, profile: str = "tiny", dataset: str = "vqa_rad", **changes):
    """The config of family ``model`` as conf/ composes it (for ``dataset``: VQA-RAD takes the family's
    own values, easy-VQA its recipe's), with ``changes``."""
    section = composed_params(f"model={model}", f"profile={profile}", f"dataset={dataset}")["model"]
    section.pop("name")
    return from_mapping(get_config_class(model), {**section, **changes}, "model")


def dataset_config(name: str, **changes):
    """The config of data set ``name`` as conf/dataset/<name>.yaml sets it, with ``changes``."""
    section = composed_params(f"dataset={name}")["dataset"]
    section.pop("name")
    return from_mapping(get_dataset(name).config_class, {**section, **changes}, "dataset")
