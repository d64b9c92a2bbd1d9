"""Model registry: family name -> the module that defines it, imported only when it is chosen.

A stage that runs one family does not import the others (Qwen2-VL pulls in a good deal of
transformers); each family module names its classes ``CONFIG_CLASS`` and ``MODEL_CLASS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

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


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}; choices: {sorted(FAMILIES)}")
    module = importlib.import_module(FAMILIES[name])
    return Family(module.CONFIG_CLASS, module.MODEL_CLASS)


def family_config(model: str, profile: str, mapping: dict):
    """The typed config of ``model``'s section ``<model>.<profile>`` (as a params file holds it)."""
    from vqalab.config import from_mapping

    return from_mapping(get_family(model).config_class, mapping, f"{model}.{profile}")
