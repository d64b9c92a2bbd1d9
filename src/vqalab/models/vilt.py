"""vilt: ViLT (VQA-pretrained) with LoRA on its transformer and a new answer head trained fully.

Paper profile: the ViLT backbone of ``dandelin/vilt-b32-finetuned-vqa`` at 224 px (ViLT's own
default is 384), LoRA on the attention query/value projections, and a new classifier over the
data set's answers in the shape of ViLT's VQA head - the study's "LoRA + last layer". Tiny
profile: a small random-init ViLT with the packaged MiniLM tokenizer (the same uncased vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, ViltConfig, ViltForQuestionAnswering, ViltModel

from vqalab.config import check_resize, param_name
from vqalab.models.base import ModelOutput, VQAModel, classification_loss, top_answers
from vqalab.models.lora import LoraSettings, apply_lora
from vqalab.models.pretrained import from_pretrained

BACKBONE_DIR = "backbone"
TOKENIZER_DIR = "tokenizer"
VILT_MAX_TEXT_POSITIONS = 40  # ViLT's text position embeddings


@dataclass(frozen=True)
class ViltFamilyConfig:
    image_size: int
    tokenizer: str  # hub id, local folder or packaged:<name>
    # How preprocess makes images square (squash | crop | pad); pad keeps the aspect ratio, as ViLT's processor does.
    resize: str = "pad"
    # A ViLT checkpoint (hub id or local folder), or null for a random-init ViLT with the sizes below.
    backbone: str | None = None
    hidden_size: int = 768
    layers: int = 12
    heads: int = 12
    intermediate_size: int = 3072
    patch_size: int = 32
    lora: LoraSettings | None = None  # null: fine-tune the whole backbone
    max_question_tokens: int = VILT_MAX_TEXT_POSITIONS
    lr: float = 1e-3  # the new answer head
    encoder_lr: float = 1e-4  # the LoRA adapters (or the whole backbone without LoRA)
    # The global batch for this family and profile (its lr and encoder_lr go with it); null: train.batch_size.
    batch_size: int | None = None

    def __post_init__(self) -> None:
        check_resize(self.resize)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        if not 1 <= self.max_question_tokens <= VILT_MAX_TEXT_POSITIONS:
            raise ValueError(f"max_question_tokens must be in [1, {VILT_MAX_TEXT_POSITIONS}] (ViLT's text positions), "
                             f"got {self.max_question_tokens}")
        if self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by heads {self.heads}")
        if self.lr <= 0 or self.encoder_lr <= 0:
            raise ValueError(f"lr and encoder_lr must be > 0, got {self.lr} and {self.encoder_lr}")


def answer_head(hidden: int, n_answers: int) -> nn.Sequential:
    """The shape of ViLT's own VQA classifier, sized for this data set's answers."""
    return nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.LayerNorm(2 * hidden), nn.GELU(),
                         nn.Linear(2 * hidden, n_answers))


class Vilt(VQAModel):
    family = "vilt"

    def __init__(self, config: ViltFamilyConfig, answers: list[str], *, backbone: ViltModel, tokenizer):
        super().__init__()
        self.config = config
        self.answers = list(answers)
        self.tokenizer = tokenizer
        self.backbone_config = backbone.config
        self.backbone = apply_lora(backbone, config.lora)
        self.classifier = answer_head(backbone.config.hidden_size, len(self.answers))

    @classmethod
    def pretrained_sources(cls, config: ViltFamilyConfig) -> dict[str, str]:
        return {"tokenizer": config.tokenizer, **({"backbone": config.backbone} if config.backbone else {})}

    @classmethod
    def build(cls, config: ViltFamilyConfig, answers: list[str], *, train_texts: list[str] = ()) -> "Vilt":
        if config.backbone is not None:
            # The VQA-finetuned checkpoint: keep its backbone (with pooler), replace its answer head.
            backbone = from_pretrained(ViltForQuestionAnswering, config.backbone, param=param_name(config, "backbone")).vilt
        else:
            backbone = ViltModel(ViltConfig(
                hidden_size=config.hidden_size, num_hidden_layers=config.layers, num_attention_heads=config.heads,
                intermediate_size=config.intermediate_size, image_size=config.image_size,
                patch_size=config.patch_size, max_position_embeddings=VILT_MAX_TEXT_POSITIONS))
        tokenizer = from_pretrained(AutoTokenizer, config.tokenizer, param=param_name(config, "tokenizer"))
        if len(tokenizer) > backbone.config.vocab_size:
            raise ValueError(f"tokenizer {config.tokenizer} has {len(tokenizer)} tokens but the ViLT backbone "
                             f"embeds {backbone.config.vocab_size}: use the backbone's own tokenizer")
        return cls(config, answers, backbone=backbone, tokenizer=tokenizer)

    @classmethod
    def from_saved(cls, directory: Path, config: ViltFamilyConfig, answers: list[str]) -> "Vilt":
        backbone = ViltModel(ViltConfig.from_pretrained(directory / BACKBONE_DIR))
        return cls(config, answers, backbone=backbone, tokenizer=AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR))

    def save_extra(self, directory: Path) -> None:
        self.backbone_config.save_pretrained(directory / BACKBONE_DIR)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)

    def param_groups(self) -> list[dict]:
        groups = [{"params": list(self.classifier.parameters()), "lr": self.config.lr}]
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        if backbone:
            groups.append({"params": backbone, "lr": self.config.encoder_lr})
        return groups

    def collate(self, items: list[dict]) -> dict:
        tokens = self.tokenizer([item["question"] for item in items], padding="max_length", truncation=True,
                                max_length=self.config.max_question_tokens, return_tensors="pt")
        return {
            "pixel_values": torch.stack([item["image"] for item in items]),
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "token_type_ids": tokens.get("token_type_ids", torch.zeros_like(tokens["input_ids"])),
            "labels": torch.tensor([item["label"] for item in items], dtype=torch.long),
        }

    def forward(self, batch: dict) -> ModelOutput:
        pixels = batch["pixel_values"].float() / 127.5 - 1.0  # ViLT normalises with mean = std = 0.5
        pixel_mask = torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.long, device=pixels.device)
        out = self.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"], pixel_values=pixels, pixel_mask=pixel_mask)
        logits = self.classifier(out.pooler_output)
        return ModelOutput(logits=logits, loss=classification_loss(logits, batch.get("labels")))

    @torch.no_grad()
    def predict(self, batch: dict, top_k: int = 1, mode: str | None = None) -> list[list[tuple[str, float]]]:
        self.check_mode(mode)
        return top_answers(self(batch).logits, self.answers, top_k)


CONFIG_CLASS, MODEL_CLASS = ViltFamilyConfig, Vilt
