"""Model registry: family name -> the module that defines it, imported only when it is chosen.

A stage that runs one family does not import the others (Qwen2-VL pulls in a good deal of
transformers), and lists only it among its DVC dependencies (``src/vqalab/models/${model}.py``);
each family module names its model class ``MODEL_CLASS``. The config classes live in
``family_configs`` and ``qwen2vl_config``, which import no torch, and are named here. conf/model/
holds one file per family, named as here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from vqalab.config import from_mapping
from vqalab.models.family_configs import PubMedClipConfig, ResNetBertConfig, ViltFamilyConfig
from vqalab.models.qwen2vl_config import Qwen2VLFamilyConfig

FAMILIES = {
    "resnet_bert": "vqalab.models.resnet_bert",
    "pubmedclip": "vqalab.models.pubmedclip",
    "vilt": "vqalab.models.vilt",
    "qwen2vl": "vqalab.models.qwen2vl",
}


@dataclass(frozen=True)
class Family:
    config_class: type
    model_class: type


# The config classes live in modules that import no torch: reading params.yaml imports no model code.
CONFIG_CLASSES = {"resnet_bert": ResNetBertConfig, "pubmedclip": PubMedClipConfig, "vilt": ViltFamilyConfig,
                  "qwen2vl": Qwen2VLFamilyConfig}


def _check_name(name: str) -> None:
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}; choices: {sorted(FAMILIES)}")


def get_family(name: str) -> Family:
    _check_name(name)
    module = importlib.import_module(FAMILIES[name])
    return Family(CONFIG_CLASSES[name], module.MODEL_CLASS)


def get_config_class(name: str) -> type:
    """The config class of family ``name``, without importing the family's model code."""
    _check_name(name)
    return CONFIG_CLASSES[name]


def chosen_family_config(params):
    """The typed config of the chosen family (``vqalab.params.Params``: ``model``, ``family``)."""
    return from_mapping(get_config_class(params.model), params.family, "model")


def build_model(params, data, *, where: str | Path | None = None):
    """A new model of the chosen family for ``data``'s answers (a ``ProcessedData``), its random
    parts drawn from ``params.seed``; ``where`` names the data in the message when its image size
    does not fit."""
    from vqalab.runtime import seed_everything  # torch: not imported by what only reads a checkpoint's metadata

    config = chosen_family_config(params)
    if data.image_size != config.image_size:
        raise ValueError(f"{where or 'the processed data'} holds {data.image_size}px images but "
                         f"model.image_size is {config.image_size}: rerun the preprocess stage (dvc repro)")
    seed_everything(params.seed)
    return get_family(params.model).model_class.build(
        config, data.vocab.answers, train_texts=[r.question for r in data.records if r.split == "train"])
