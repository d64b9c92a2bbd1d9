"""vilt: ViLT (VQA-pretrained) with LoRA on its transformer and a new answer head trained fully.

Paper profile: the ViLT backbone of ``dandelin/vilt-b32-finetuned-vqa`` at 224 px (ViLT's own
default is 384), LoRA on the attention query/value projections, and a new classifier over the
data set's answers in the shape of ViLT's VQA head - the study's "LoRA + last layer". Tiny
profile: a small random-init ViLT with the packaged MiniLM tokenizer (the same uncased vocabulary).

With ``question_prior`` the answer head starts at zero over the blind baseline's scores
(``vqalab.models.prior``), read from a frozen sentence encoder (``question_encoder``) whose question
features the features stage caches: a ViLT trained from scratch on a small data set learns the
questions too slowly to match a question-only baseline (VQA-RAD public: 6 points below it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, ViltConfig, ViltForQuestionAnswering, ViltModel

from vqalab.config import check_resize, param_name
from vqalab.models.base import ModelOutput, VQAModel, classification_loss, fingerprint, top_answers
from vqalab.models.lora import LoraSettings, apply_lora
from vqalab.pretrained import from_pretrained
from vqalab.models.prior import QuestionPrior, mean_pool

BACKBONE_DIR = "backbone"
TOKENIZER_DIR = "tokenizer"
QUESTION_ENCODER_DIR = "question_encoder"
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
    # Start from the blind baseline's answer scores (see above), read from the mean-pooled
    # embedding of ``question_encoder`` (hub id, local folder or packaged:<name>), kept frozen.
    question_prior: bool = False
    question_encoder: str | None = None
    # The global training batch of this family and profile (its lr and encoder_lr go with it).
    batch_size: int = 64

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
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.question_prior and not self.question_encoder:
            raise ValueError("question_prior reads the questions with question_encoder, which is null: name a sentence "
                             "encoder (e.g. packaged:all-MiniLM-L6-v2) or set question_prior: false")


def answer_head(hidden: int, n_answers: int) -> nn.Sequential:
    """The shape of ViLT's own VQA classifier, sized for this data set's answers."""
    return nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.LayerNorm(2 * hidden), nn.GELU(),
                         nn.Linear(2 * hidden, n_answers))


class Vilt(VQAModel):
    family = "vilt"

    def __init__(self, config: ViltFamilyConfig, answers: list[str], *, backbone: ViltModel, tokenizer,
                 question_encoder: nn.Module | None = None, question_tokenizer=None):
        super().__init__()
        self.config = config
        self.answers = list(answers)
        self.tokenizer = tokenizer
        self.backbone_config = backbone.config
        self.backbone = apply_lora(backbone, config.lora)
        self.classifier = answer_head(backbone.config.hidden_size, len(self.answers))
        self.question_encoder = self.question_tokenizer = self.question_prior = None
        if config.question_prior:
            self.question_encoder = question_encoder.requires_grad_(False).eval()
            self.question_tokenizer = question_tokenizer
            # Fitted by prepare_for_training, then fixed; the head's last layer starts at zero.
            self.question_prior = QuestionPrior(question_encoder.config.hidden_size, len(self.answers))
            nn.init.zeros_(self.classifier[-1].weight)
            nn.init.zeros_(self.classifier[-1].bias)

    @classmethod
    def pretrained_sources(cls, config: ViltFamilyConfig) -> dict[str, str]:
        return {"tokenizer": config.tokenizer, **({"backbone": config.backbone} if config.backbone else {}),
                **({"question_encoder": config.question_encoder} if config.question_prior else {})}

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
        question = {}
        if config.question_prior:
            param = param_name(config, "question_encoder")
            question = {"question_encoder": from_pretrained(AutoModel, config.question_encoder, param=param),
                        "question_tokenizer": from_pretrained(AutoTokenizer, config.question_encoder, param=param)}
        return cls(config, answers, backbone=backbone, tokenizer=tokenizer, **question)

    @classmethod
    def from_saved(cls, directory: Path, config: ViltFamilyConfig, answers: list[str]) -> "Vilt":
        backbone = ViltModel(ViltConfig.from_pretrained(directory / BACKBONE_DIR))
        question = {}
        if config.question_prior:
            question_dir = directory / QUESTION_ENCODER_DIR
            question = {"question_encoder": AutoModel.from_config(AutoConfig.from_pretrained(question_dir)),
                        "question_tokenizer": AutoTokenizer.from_pretrained(question_dir)}
        return cls(config, answers, backbone=backbone, tokenizer=AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR),
                   **question)

    def save_extra(self, directory: Path) -> None:
        self.backbone_config.save_pretrained(directory / BACKBONE_DIR)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        if self.question_encoder is not None:
            self.question_encoder.config.save_pretrained(directory / QUESTION_ENCODER_DIR)
            self.question_tokenizer.save_pretrained(directory / QUESTION_ENCODER_DIR)

    # The question prior's cached features ---------------------------------------------------
    @classmethod
    def feature_spec(cls, config: ViltFamilyConfig, *, seed: int) -> dict:
        if not config.question_prior:
            return {}
        return {"question": {"text_encoder": config.question_encoder, "max_question_tokens": config.max_question_tokens}}

    @classmethod
    def feature_config(cls, config: ViltFamilyConfig) -> dict:
        # The features stage builds the model to reach its question encoder: a random-init ViLT of
        # these sizes (never the pretrained backbone, which the question features do not read).
        fields = ("image_size", "patch_size", "hidden_size", "layers", "heads", "intermediate_size", "tokenizer",
                  "max_question_tokens", "question_prior", "question_encoder")
        return {name: getattr(config, name) for name in fields} if config.question_prior else {}

    def feature_fingerprints(self) -> dict[str, str]:
        return {"question": fingerprint(self.question_encoder)} if self.question_encoder is not None else {}

    @torch.no_grad()
    def encode_question_features(self, questions: list[str]) -> torch.Tensor:
        device = self.classifier[-1].weight.device
        tokens = self.question_tokenizer(questions, padding=True, truncation=True,
                                         max_length=self.config.max_question_tokens, return_tensors="pt").to(device)
        return self.encode_questions(tokens["input_ids"], tokens["attention_mask"])

    def encode_questions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.question_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    @property
    def starts_as_baseline(self) -> bool:
        return self.question_prior is not None

    def prepare_for_training(self, train_set, val_set, *, blind) -> dict:
        if self.question_prior is None:
            return {}
        return self.question_prior.set_from(blind, answers=self.answers, encoder=self.config.question_encoder,
                                            where=param_name(self.config, "question_encoder"))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.question_encoder is not None:
            self.question_encoder.eval()  # frozen: no dropout
        return self

    def param_groups(self) -> list[dict]:
        groups = [{"params": list(self.classifier.parameters()), "lr": self.config.lr}]
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        if backbone:
            groups.append({"params": backbone, "lr": self.config.encoder_lr})
        return groups

    def collate(self, items: list[dict]) -> dict:
        questions = [item["question"] for item in items]
        tokens = self.tokenizer(questions, padding="max_length", truncation=True,
                                max_length=self.config.max_question_tokens, return_tensors="pt")
        batch = {
            "pixel_values": torch.stack([item["image"] for item in items]),
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "token_type_ids": tokens.get("token_type_ids", torch.zeros_like(tokens["input_ids"])),
            "labels": torch.tensor([item["label"] for item in items], dtype=torch.long),
        }
        if self.question_prior is not None:
            if "question_features" in items[0]:
                batch["question_features"] = torch.stack([item["question_features"] for item in items])
            else:  # no cache (vqalab predict): the encoder runs in forward
                prior_tokens = self.question_tokenizer(questions, padding=True, truncation=True,
                                                       max_length=self.config.max_question_tokens, return_tensors="pt")
                batch["prior_input_ids"] = prior_tokens["input_ids"]
                batch["prior_attention_mask"] = prior_tokens["attention_mask"]
        return batch

    def forward(self, batch: dict) -> ModelOutput:
        pixels = batch["pixel_values"].float() / 127.5 - 1.0  # ViLT normalises with mean = std = 0.5
        pixel_mask = torch.ones(pixels.shape[0], *pixels.shape[-2:], dtype=torch.long, device=pixels.device)
        out = self.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            token_type_ids=batch["token_type_ids"], pixel_values=pixels, pixel_mask=pixel_mask)
        logits = self.classifier(out.pooler_output)
        if self.question_prior is not None:
            question = batch.get("question_features")
            if question is None:
                question = self.encode_questions(batch["prior_input_ids"], batch["prior_attention_mask"])
            logits = logits + self.question_prior.log_probs(question)
        return ModelOutput(logits=logits, loss=classification_loss(logits, batch.get("labels")))

    @torch.no_grad()
    def predict(self, batch: dict, top_k: int = 1, mode: str | None = None) -> list[list[tuple[str, float]]]:
        self.check_mode(mode)
        return top_answers(self(batch).logits, self.answers, top_k)


CONFIG_CLASS, MODEL_CLASS = ViltFamilyConfig, Vilt
