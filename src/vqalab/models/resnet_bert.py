"""resnet_bert: a torchvision ResNet image encoder + a BERT-family text encoder + the fused classifier.

The study's most accurate model on medical VQA (ResNet50 + bert-base-uncased, full fine-tuning).
Profile ``tiny`` uses a narrow random-init ResNet at the data set's native size and the packaged
MiniLM text encoder, frozen, so it trains offline on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

from vqalab.data.preprocess import check_resize
from vqalab.models.fusion import FusionClassifier, check_fusion_settings

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
IMAGE_ENCODERS = ("resnet_small", *TORCHVISION_RESNETS)


@dataclass(frozen=True)
class ResNetBertConfig:
    image_size: int
    # resnet_small: torchvision BasicBlocks with the widths below, random init (tiny profile);
    # resnet18/34/50/101: torchvision's models.
    image_encoder: str
    text_encoder: str  # hub id, local folder or packaged:<name>
    # How preprocess makes images square (squash | crop | pad); squash keeps all of a scan in view,
    # as the VQA-RAD literature's pipelines do.
    resize: str = "squash"
    # null (random init), imagenet (torchvision's ImageNet weights, downloaded once into the
    # torch hub cache) or the path of a saved state dict.
    image_weights: str | None = None
    image_widths: tuple[int, ...] = (32, 64, 128, 256)
    freeze_text_encoder: bool = False
    max_question_tokens: int = 32
    hidden_size: int = 512
    dropout: float = 0.1
    lr: float = 1e-3  # newly initialised parts: fusion, classifier, a random-init CNN
    encoder_lr: float = 2e-5  # pretrained encoders that are fine-tuned

    def __post_init__(self) -> None:
        check_resize(self.resize)
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder {self.image_encoder!r} is not one of {IMAGE_ENCODERS}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 (a ResNet downsamples 32 times), got {self.image_size}")
        if self.image_encoder == "resnet_small" and (len(self.image_widths) != 4 or min(self.image_widths) < 1):
            raise ValueError(f"image_widths must be 4 positive channel counts, got {list(self.image_widths)}")
        if self.image_encoder == "resnet_small" and self.image_weights is not None:
            raise ValueError("resnet_small has no pretrained weights: set image_weights to null")
        check_fusion_settings(self)


class SmallResNet(nn.Module):
    """ResNet-10 (one torchvision BasicBlock per stage) with configurable widths."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        blocks, channels = [], widths[0]
        for stage, width in enumerate(widths):
            stride = 1 if stage == 0 else 2
            downsample = None
            if stride != 1 or channels != width:
                downsample = nn.Sequential(conv1x1(channels, width, stride), nn.BatchNorm2d(width))
            blocks.append(BasicBlock(channels, width, stride, downsample))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.out_features = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.blocks(self.stem(images)), 1).flatten(1)


class ResNetBert(FusionClassifier):
    family = "resnet_bert"
    pixel_mean = IMAGENET_MEAN
    pixel_std = IMAGENET_STD

    @classmethod
    def build_image_encoder(cls, config: ResNetBertConfig, *, saved: Path | None) -> tuple[nn.Module, int]:
        if config.image_encoder == "resnet_small":
            cnn = SmallResNet(config.image_widths)
            return cnn, cnn.out_features
        weights = None
        if saved is None and config.image_weights == "imagenet":
            weights = torchvision.models.get_model_weights(config.image_encoder).DEFAULT
        try:
            cnn = torchvision.models.get_model(config.image_encoder, weights=weights)
        except (URLError, OSError) as err:
            raise OSError(f"could not get torchvision's ImageNet weights for {config.image_encoder} ({err}). Without "
                          f"network, save its state dict where there is network and set "
                          f"resnet_bert.<profile>.image_weights to that file.") from None
        if saved is None and config.image_weights not in (None, "imagenet"):
            path = Path(config.image_weights)
            if not path.is_file():
                raise FileNotFoundError(f"image_weights file {path} does not exist (use imagenet, null or a state dict path)")
            cnn.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        features = cnn.fc.in_features
        cnn.fc = nn.Identity()
        return cnn, features

    @classmethod
    def image_encoder_is_pretrained(cls, config: ResNetBertConfig) -> bool:
        return config.image_weights is not None
