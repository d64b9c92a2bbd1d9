"""Model registry: family name -> its config class and model class."""

from __future__ import annotations

from dataclasses import dataclass

from vqalab.models.base import VQAModel
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig


@dataclass(frozen=True)
class Family:
    config_class: type
    model_class: type[VQAModel]


FAMILIES = {
    "resnet_bert": Family(ResNetBertConfig, ResNetBert),
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choices: {sorted(FAMILIES)}") from None
