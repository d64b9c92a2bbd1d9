"""resnet_bert: a torchvision ResNet image encoder + a BERT-family text encoder + a fused classifier.

The study's most accurate model on medical VQA (ResNet50 + bert-base-uncased, full fine-tuning).
Profile ``tiny`` uses a narrow random-init ResNet at the data set's native size and the packaged
MiniLM text encoder, frozen, so it trains offline on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1
from transformers import AutoConfig, AutoModel, AutoTokenizer

from vqalab.data.vocab import IGNORE_INDEX
from vqalab.models.base import ModelOutput, VQAModel
from vqalab.models.pretrained import resolve_pretrained

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
IMAGE_ENCODERS = ("resnet_small", *TORCHVISION_RESNETS)
TEXT_ENCODER_DIR = "text_encoder"


@dataclass(frozen=True)
class ResNetBertConfig:
    image_size: int
    # resnet_small: torchvision BasicBlocks with the widths below, random init (tiny profile);
    # resnet18/34/50/101: torchvision's models.
    image_encoder: str
    text_encoder: str  # hub id, local folder or packaged:<name>
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
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder {self.image_encoder!r} is not one of {IMAGE_ENCODERS}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 (a ResNet downsamples 32 times), got {self.image_size}")
        if self.image_encoder == "resnet_small" and (len(self.image_widths) != 4 or min(self.image_widths) < 1):
            raise ValueError(f"image_widths must be 4 positive channel counts, got {list(self.image_widths)}")
        if self.image_encoder == "resnet_small" and self.image_weights is not None:
            raise ValueError("resnet_small has no pretrained weights: set image_weights to null")
        for name in ("max_question_tokens", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.encoder_lr <= 0:
            raise ValueError(f"lr and encoder_lr must be > 0, got {self.lr} and {self.encoder_lr}")


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


def build_image_encoder(config: ResNetBertConfig, *, load_weights: bool) -> tuple[nn.Module, int]:
    if config.image_encoder == "resnet_small":
        cnn = SmallResNet(config.image_widths)
        return cnn, cnn.out_features
    weights = None
    if load_weights and config.image_weights == "imagenet":
        weights = torchvision.models.get_model_weights(config.image_encoder).DEFAULT
    cnn = torchvision.models.get_model(config.image_encoder, weights=weights)
    if load_weights and config.image_weights not in (None, "imagenet"):
        path = Path(config.image_weights)
        if not path.is_file():
            raise FileNotFoundError(f"image_weights file {path} does not exist (use imagenet, null or a state dict path)")
        cnn.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    features = cnn.fc.in_features
    cnn.fc = nn.Identity()
    return cnn, features


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class ResNetBert(VQAModel):
    family = "resnet_bert"

    def __init__(self, config: ResNetBertConfig, answers: list[str], *, image_encoder: nn.Module,
                 image_features: int, text_encoder: nn.Module, tokenizer):
        super().__init__()
        self.config = config
        self.answers = list(answers)
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        hidden = config.hidden_size
        self.image_proj = nn.Linear(image_features, hidden)
        self.text_proj = nn.Linear(text_encoder.config.hidden_size, hidden)
        # Concatenation keeps each modality; the product term lets the head condition one on the other.
        self.classifier = nn.Sequential(
            nn.Linear(3 * hidden, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, len(self.answers)),
        )
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._question_cache: dict[tuple[int, ...], torch.Tensor] = {}
        if config.freeze_text_encoder:
            self.text_encoder.requires_grad_(False)

    # Construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, config: ResNetBertConfig, answers: list[str]) -> "ResNetBert":
        """Build with pretrained weights from their sources (hub id, local folder, package)."""
        source = resolve_pretrained(config.text_encoder)
        image_encoder, features = build_image_encoder(config, load_weights=True)
        return cls(config, answers, image_encoder=image_encoder, image_features=features,
                   text_encoder=AutoModel.from_pretrained(source), tokenizer=AutoTokenizer.from_pretrained(source))

    @classmethod
    def from_saved(cls, directory: Path, config: ResNetBertConfig, answers: list[str]) -> "ResNetBert":
        """Rebuild the architecture from a checkpoint folder; the weights come from its state dict."""
        text_dir = directory / TEXT_ENCODER_DIR
        image_encoder, features = build_image_encoder(config, load_weights=False)
        return cls(config, answers, image_encoder=image_encoder, image_features=features,
                   text_encoder=AutoModel.from_config(AutoConfig.from_pretrained(text_dir)),
                   tokenizer=AutoTokenizer.from_pretrained(text_dir))

    def save_extra(self, directory: Path) -> None:
        self.text_encoder.config.save_pretrained(directory / TEXT_ENCODER_DIR)
        self.tokenizer.save_pretrained(directory / TEXT_ENCODER_DIR)

    # Training -----------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        pretrained = [p for p in self.text_encoder.parameters() if p.requires_grad]
        if self.config.image_weights is not None:
            pretrained += list(self.image_encoder.parameters())
        pretrained_ids = {id(p) for p in pretrained}
        new = [p for p in self.parameters() if p.requires_grad and id(p) not in pretrained_ids]
        groups = [{"params": new, "lr": self.config.lr}]
        if pretrained:
            groups.append({"params": pretrained, "lr": self.config.encoder_lr})
        return groups

    def train(self, mode: bool = True) -> "ResNetBert":
        super().train(mode)
        if self.config.freeze_text_encoder:
            self.text_encoder.eval()  # a frozen encoder also keeps dropout off
        return self

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._question_cache.clear()  # cached embeddings belong to the old text-encoder weights
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def collate(self, items: list[dict]) -> dict:
        tokens = self.tokenizer([item["question"] for item in items], padding=True, truncation=True,
                                max_length=self.config.max_question_tokens, return_tensors="pt")
        return {
            "pixel_values": torch.stack([item["image"] for item in items]),
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "labels": torch.tensor([item["label"] for item in items], dtype=torch.long),
        }

    # Inference ----------------------------------------------------------------------------
    def encode_questions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if not self.config.freeze_text_encoder:
            hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return mean_pool(hidden, attention_mask)
        # A frozen encoder maps a question to the same vector every epoch: encode each distinct
        # question once. The cache is bounded by the number of distinct questions in the data.
        keys = [tuple(ids[mask.bool()].tolist()) for ids, mask in zip(input_ids, attention_mask)]
        first_row = {}
        for row, key in enumerate(keys):
            if key not in self._question_cache:
                first_row.setdefault(key, row)
        if first_row:
            rows = torch.tensor(list(first_row.values()), device=input_ids.device)
            with torch.no_grad():
                hidden = self.text_encoder(input_ids=input_ids[rows], attention_mask=attention_mask[rows]).last_hidden_state
                pooled = mean_pool(hidden, attention_mask[rows])
            self._question_cache.update(zip(first_row, pooled))
        return torch.stack([self._question_cache[key] for key in keys])

    def forward(self, batch: dict) -> ModelOutput:
        pixels = (batch["pixel_values"].float() / 255.0 - self.pixel_mean) / self.pixel_std
        image = self.image_proj(self.image_encoder(pixels))
        text = self.text_proj(self.encode_questions(batch["input_ids"], batch["attention_mask"]))
        logits = self.classifier(torch.cat([image, text, image * text], dim=-1))
        loss = None
        labels = batch.get("labels")
        if labels is not None and (labels != IGNORE_INDEX).any():
            loss = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)
        return ModelOutput(logits=logits, loss=loss)

    @torch.no_grad()
    def predict(self, batch: dict, top_k: int = 1) -> list[list[tuple[str, float]]]:
        probs = self(batch).logits.float().softmax(-1)
        scores, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        return [[(self.answers[i], float(s)) for s, i in zip(row_s.tolist(), row_i.tolist())]
                for row_s, row_i in zip(scores, indices)]
