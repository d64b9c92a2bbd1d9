"""The classifier shared by resnet_bert and pubmedclip: image encoder + text encoder + fusion + head.

A family subclasses ``FusionClassifier`` and supplies only its image encoder (how to build it
from its sources, how to rebuild it from a checkpoint) and its pixel normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from vqalab.data.vocab import IGNORE_INDEX
from vqalab.models.base import ModelOutput, VQAModel
from vqalab.models.pretrained import from_pretrained

TEXT_ENCODER_DIR = "text_encoder"


def check_fusion_settings(config) -> None:
    """Validation every fusion-classifier config shares (called from its ``__post_init__``)."""
    for name in ("max_question_tokens", "hidden_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
    if config.lr <= 0 or config.encoder_lr <= 0:
        raise ValueError(f"lr and encoder_lr must be > 0, got {config.lr} and {config.encoder_lr}")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class FusionClassifier(VQAModel):
    """Needs a config with ``text_encoder``, ``freeze_text_encoder``, ``max_question_tokens``,
    ``hidden_size``, ``dropout``, ``lr`` and ``encoder_lr``. Subclasses implement
    ``build_image_encoder``, ``image_encoder_is_pretrained`` and ``save_image_encoder``."""

    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]

    def __init__(self, config, answers: list[str], *, image_encoder: nn.Module, image_features: int,
                 text_encoder: nn.Module, tokenizer):
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
        self.register_buffer("image_mean", torch.tensor(self.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(self.pixel_std).view(1, 3, 1, 1), persistent=False)
        self._question_cache: dict[tuple[int, ...], torch.Tensor] = {}
        if config.freeze_text_encoder:
            self.text_encoder.requires_grad_(False)

    # Family hooks ---------------------------------------------------------------------------
    @classmethod
    def build_image_encoder(cls, config, *, saved: Path | None) -> tuple[nn.Module, int]:
        """(encoder returning pooled features, feature size); ``saved`` is a checkpoint folder to
        rebuild the architecture from, or None to load pretrained weights from their source."""
        raise NotImplementedError

    @classmethod
    def image_encoder_is_pretrained(cls, config) -> bool:
        raise NotImplementedError

    def save_image_encoder(self, directory: Path) -> None:
        """Write what ``build_image_encoder(saved=directory)`` needs (nothing for torchvision)."""

    # Construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, config, answers: list[str], *, train_texts: list[str] = ()):
        """Build with pretrained weights from their sources (hub id, local folder, package)."""
        param = f"{cls.family}.<profile>.text_encoder"
        image_encoder, features = cls.build_image_encoder(config, saved=None)
        return cls(config, answers, image_encoder=image_encoder, image_features=features,
                   text_encoder=from_pretrained(AutoModel, config.text_encoder, param=param),
                   tokenizer=from_pretrained(AutoTokenizer, config.text_encoder, param=param))

    @classmethod
    def from_saved(cls, directory: Path, config, answers: list[str]):
        text_dir = directory / TEXT_ENCODER_DIR
        image_encoder, features = cls.build_image_encoder(config, saved=directory)
        return cls(config, answers, image_encoder=image_encoder, image_features=features,
                   text_encoder=AutoModel.from_config(AutoConfig.from_pretrained(text_dir)),
                   tokenizer=AutoTokenizer.from_pretrained(text_dir))

    def save_extra(self, directory: Path) -> None:
        self.text_encoder.config.save_pretrained(directory / TEXT_ENCODER_DIR)
        self.tokenizer.save_pretrained(directory / TEXT_ENCODER_DIR)
        self.save_image_encoder(directory)

    # Training -----------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        pretrained = [p for p in self.text_encoder.parameters() if p.requires_grad]
        if self.image_encoder_is_pretrained(self.config):
            pretrained += [p for p in self.image_encoder.parameters() if p.requires_grad]
        pretrained_ids = {id(p) for p in pretrained}
        new = [p for p in self.parameters() if p.requires_grad and id(p) not in pretrained_ids]
        groups = [{"params": new, "lr": self.config.lr}]
        if pretrained:
            groups.append({"params": pretrained, "lr": self.config.encoder_lr})
        return groups

    def train(self, mode: bool = True):
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
        pixels = (batch["pixel_values"].float() / 255.0 - self.image_mean) / self.image_std
        image = self.image_proj(self.image_encoder(pixels))
        text = self.text_proj(self.encode_questions(batch["input_ids"], batch["attention_mask"]))
        logits = self.classifier(torch.cat([image, text, image * text], dim=-1))
        return ModelOutput(logits=logits, loss=classification_loss(logits, batch.get("labels")))

    @torch.no_grad()
    def predict(self, batch: dict, top_k: int = 1, mode: str | None = None) -> list[list[tuple[str, float]]]:
        self.check_mode(mode)
        return top_answers(self(batch).logits, self.answers, top_k)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Cross-entropy over the answers; None when no label in the batch is inside the vocabulary."""
    if labels is None or not (labels != IGNORE_INDEX).any():
        return None
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


def top_answers(logits: torch.Tensor, answers: list[str], top_k: int) -> list[list[tuple[str, float]]]:
    probs = logits.float().softmax(-1)
    scores, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[(answers[i], float(s)) for s, i in zip(row_s.tolist(), row_i.tolist())]
            for row_s, row_i in zip(scores, indices)]
