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

from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, ViltConfig, ViltForQuestionAnswering, ViltModel

from vqalab.config import param_name
from vqalab.models.base import ModelOutput, VQAModel, classification_loss, fingerprint, top_answers
from vqalab.models.family_configs import VILT_MAX_TEXT_POSITIONS, ViltFamilyConfig
from vqalab.models.lora import apply_lora
from vqalab.pretrained import from_pretrained
from vqalab.models.prior import QuestionPrior, mean_pool

BACKBONE_DIR = "backbone"
TOKENIZER_DIR = "tokenizer"
QUESTION_ENCODER_DIR = "question_encoder"



def answer_head(hidden: int, n_answers: int) -> nn.Sequential:
    """The shape of ViLT's own VQA classifier, sized for this data set's answers."""
    return nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.LayerNorm(2 * hidden), nn.GELU(),
                         nn.Linear(2 * hidden, n_answers))


class Vilt(VQAModel):
    family = "vilt"
    description = "ViLT (one transformer over image patches and question tokens) with a new answer head"

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

    def pretrained_parts(self) -> dict[str, dict[str, str]]:
        parts = {}
        if self.config.backbone is not None:
            parts["backbone."] = {"param": "model.backbone", "source": self.config.backbone}
        if self.question_encoder is not None:
            parts["question_encoder."] = {"param": "model.question_encoder", "source": self.config.question_encoder}
        return parts

    def load_extra(self, directory: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR)
        if self.question_encoder is not None:
            self.question_tokenizer = AutoTokenizer.from_pretrained(directory / QUESTION_ENCODER_DIR)

    def save_extra(self, directory: Path) -> None:
        self.backbone_config.save_pretrained(directory / BACKBONE_DIR)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        if self.question_encoder is not None:
            self.question_encoder.config.save_pretrained(directory / QUESTION_ENCODER_DIR)
            self.question_tokenizer.save_pretrained(directory / QUESTION_ENCODER_DIR)

    # The question prior's cached features ---------------------------------------------------
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
        return ModelOutput(logits=logits, loss=classification_loss(logits, batch.get("labels"), self.part_credit))

    @torch.no_grad()
    def predict(self, batch: dict, top_k: int = 1, mode: str | None = None) -> list[list[tuple[str, float]]]:
        self.check_mode(mode)
        return top_answers(self(batch).logits, self.answers, top_k)


MODEL_CLASS = Vilt
