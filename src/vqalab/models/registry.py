"""Model registry: family name -> its config class and model class."""

from __future__ import annotations

from dataclasses import dataclass

from vqalab.models.base import VQAModel
from vqalab.models.pubmedclip import PubMedClip, PubMedClipConfig
from vqalab.models.qwen2vl import Qwen2VL, Qwen2VLFamilyConfig
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig
from vqalab.models.vilt import Vilt, ViltFamilyConfig


@dataclass(frozen=True)
class Family:
    config_class: type
    model_class: type[VQAModel]


FAMILIES = {
    "resnet_bert": Family(ResNetBertConfig, ResNetBert),
    "pubmedclip": Family(PubMedClipConfig, PubMedClip),
    "vilt": Family(ViltFamilyConfig, Vilt),
    "qwen2vl": Family(Qwen2VLFamilyConfig, Qwen2VL),
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choices: {sorted(FAMILIES)}") from None
