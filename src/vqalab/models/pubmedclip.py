"""pubmedclip: the PubMedCLIP ViT-B/32 vision tower + a BERT-family text encoder + the fused classifier.

Paper profile: the vision tower of ``flaviagiammarino/pubmed-clip-vit-base-patch32`` (CLIP
fine-tuned on ROCO radiology captions) with ``bert-base-uncased``, 224 px, fine-tuned. Tiny
profile: a small random-init CLIP vision transformer and the packaged MiniLM text encoder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from vqalab.config import param_name
from vqalab.models.family_configs import PubMedClipConfig
from vqalab.models.fusion import FusionClassifier, enable_activation_checkpointing
from vqalab.pretrained import from_pretrained

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VISION_DIR = "vision_encoder"


class ClipImageEncoder(nn.Module):
    """A CLIP vision tower returning all its tokens (class token and patches) after the final layer norm."""

    def __init__(self, vision: CLIPVisionModel):
        super().__init__()
        self.vision = vision

    @property
    def tower(self) -> nn.Module:
        """The module holding embeddings, encoder and layer norms (transformers 5 dropped the
        ``vision_model`` wrapper that 4.x had)."""
        return getattr(self.vision, "vision_model", self.vision)

    def blocks(self) -> list[nn.Module]:
        model = self.tower
        return [nn.ModuleList([model.embeddings, model.pre_layrnorm]), *model.encoder.layers, model.post_layernorm]

    def enable_gradient_checkpointing(self) -> None:
        enable_activation_checkpointing(self.vision)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # A resolution other than the tower's own interpolates its position embeddings.
        interpolate = pixels.shape[-1] != self.vision.config.image_size
        hidden = self.vision(pixel_values=pixels, interpolate_pos_encoding=interpolate).last_hidden_state
        return self.tower.post_layernorm(hidden)


class PubMedClip(FusionClassifier):
    family = "pubmedclip"
    description = ("a CLIP vision transformer and a BERT-style question encoder fused by attention, with a "
                   "classifier over the training answers")
    pixel_mean = CLIP_MEAN
    pixel_std = CLIP_STD

    @classmethod
    def build_image_encoder(cls, config: PubMedClipConfig, *, saved: Path | None) -> tuple[nn.Module, int]:
        if saved is not None:
            vision = CLIPVisionModel(CLIPVisionConfig.from_pretrained(saved / VISION_DIR))
        elif config.vision_model is not None:
            # Takes the vision half of a full CLIP checkpoint (the text half is not needed).
            vision = from_pretrained(CLIPVisionModel, config.vision_model, param=param_name(config, "vision_model"))
        else:
            vision = CLIPVisionModel(CLIPVisionConfig(
                hidden_size=config.vision_hidden_size, num_hidden_layers=config.vision_layers,
                num_attention_heads=config.vision_heads, intermediate_size=config.vision_intermediate_size,
                image_size=config.image_size, patch_size=config.patch_size))
        return ClipImageEncoder(vision), vision.config.hidden_size

    def save_image_encoder(self, directory: Path) -> None:
        self.image_encoder.vision.config.save_pretrained(directory / VISION_DIR)

    def image_source(self) -> dict[str, str]:
        return {"param": "model.vision_model", "source": self.config.vision_model}


MODEL_CLASS = PubMedClip
