"""The classifier shared by resnet_bert and pubmedclip: image encoder + text encoder + fusion + head.

A family subclasses ``FusionClassifier`` and supplies only its image encoder (how to build it
from its sources, how to rebuild it from a checkpoint) and its pixel normalisation.

How each encoder trains is a parameter (``image_training``, ``text_training``):

- ``full``: every weight trains;
- ``partial``: only the last ``trainable_blocks`` blocks train (CNN stages, transformer layers);
  a CNN's frozen first stages run once, in the features stage, and training runs the trainable
  stages on their cached output, once per image of a batch (batches keep an image's questions
  together);
- ``frozen``: nothing trains, and the features stage computes its outputs once, so training runs
  only the fusion and the head on cached features;
- ``lora`` (text only): LoRA adapters (``text_lora``) on a frozen text encoder.

With ``question_prior`` (a frozen text encoder), the answer scores start from the blind baseline's
(``vqalab.models.prior``) and the fusion learns only what the image adds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer

from vqalab.config import param_name
from vqalab.models.base import ModelOutput, VQAModel, classification_loss, fingerprint, top_answers
from vqalab.models.family_configs import FusionConfig
from vqalab.models.lora import apply_lora
from vqalab.pretrained import from_pretrained
from vqalab.models.prior import QuestionPrior, mean_pool

TEXT_ENCODER_DIR = "text_encoder"

log = logging.getLogger(__name__)


def text_blocks(text_encoder: nn.Module) -> list[nn.Module]:
    """The transformer layers of a BERT-family encoder, embeddings first (for ``partial``)."""
    if not hasattr(text_encoder, "encoder") or not hasattr(text_encoder.encoder, "layer"):
        raise ValueError(f"text_training: partial needs a BERT-family text encoder with encoder.layer; "
                         f"{type(text_encoder).__name__} has none (use full, frozen or lora)")
    return [text_encoder.embeddings, *text_encoder.encoder.layer]


def set_trainable(encoder: nn.Module, blocks: list[nn.Module], mode: str, trainable_blocks: int) -> list[nn.Module]:
    """Apply ``full`` / ``partial`` / ``frozen`` to an encoder whose ordered blocks are ``blocks``;
    returns the frozen blocks (they stay in eval mode, so batch-norm statistics do not drift).
    Under ``partial``, parts outside the blocks (such as an unused pooler) are frozen too."""
    if mode == "full":
        return []
    encoder.requires_grad_(False)
    if mode == "frozen":
        return [encoder]
    for block in blocks[-trainable_blocks:]:
        block.requires_grad_(True)
    return list(blocks[:-trainable_blocks])


def enable_activation_checkpointing(model: nn.Module) -> None:
    """transformers 5.x renamed gradient_checkpointing_enable; use the new name where it exists."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


class FusionClassifier(VQAModel):
    """Built from a ``FusionConfig`` of the family (whose subclass names the fields that build the
    image encoder and says whether it is pretrained). Subclasses implement ``build_image_encoder``
    and ``save_image_encoder``; their image encoder returns tokens
    ``(batch, tokens, features)`` and has ``blocks()`` and ``enable_gradient_checkpointing()``."""

    pixel_mean: tuple[float, float, float]
    pixel_std: tuple[float, float, float]

    def __init__(self, config: FusionConfig, answers: list[str], *, image_encoder: nn.Module, image_features: int,
                 text_encoder: nn.Module, tokenizer):
        super().__init__()
        self.config = config
        self.answers = list(answers)
        self.image_encoder = image_encoder
        text_size = text_encoder.config.hidden_size
        self._frozen_blocks = set_trainable(image_encoder, image_encoder.blocks(), config.image_training,
                                            config.trainable_blocks)
        # How many first stages of the image encoder the features stage runs: partial's frozen ones, on a CNN.
        self.cached_image_stages = len(self._frozen_blocks) if config.caches_frozen_image_stages() else 0
        if config.text_training == "lora":
            text_encoder = apply_lora(text_encoder, config.text_lora)
        elif config.text_training != "full":
            blocks = text_blocks(text_encoder) if config.text_training == "partial" else []
            self._frozen_blocks += set_trainable(text_encoder, blocks, config.text_training, config.trainable_blocks)
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self._question_ids: dict[str, list[int]] = {}  # tokenize's cache: each distinct question's ids
        if config.gradient_checkpointing:
            image_encoder.enable_gradient_checkpointing()
            if config.text_training != "frozen":
                enable_activation_checkpointing(self.text_encoder)
        hidden = config.hidden_size
        # Image tokens of a pretrained CNN come in their own scale (EfficientNet: unbounded swish
        # outputs), and so does a mean-pooled sentence embedding: normalised, both train at the
        # head's learning rate (on VQA-RAD frame, the question's norm alone moved validation
        # accuracy from 0.449 to 0.468).
        self.image_norm = nn.LayerNorm(image_features)
        self.text_norm = nn.LayerNorm(text_size)
        # Dropout on the projected tokens (hidden wide, not image_features wide: 2.5x cheaper).
        self.token_dropout = nn.Dropout(config.dropout)
        self.image_proj = nn.Linear(image_features, hidden)
        self.text_proj = nn.Linear(text_size, hidden)
        # The question chooses which image tokens to look at (one attention head per hop); each
        # further hop asks again with the question plus what the last one found (stacked attention).
        self.image_queries = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(config.attention_hops))
        # Concatenation keeps each modality; the product term lets the head condition one on the other.
        self.classifier = nn.Sequential(
            nn.Linear((5 if config.scene_vector else 3) * hidden, hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, len(self.answers)),
        )
        self.question_prior = None
        if config.question_prior:
            # Fitted by prepare_for_training, then fixed; the head starts at zero, so the first
            # step predicts exactly as the blind baseline does.
            self.question_prior = QuestionPrior(text_size, len(self.answers))
            nn.init.zeros_(self.classifier[-1].weight)
            nn.init.zeros_(self.classifier[-1].bias)
        mean, std = self.pixel_stats(config)
        self.register_buffer("image_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    # Family hooks ---------------------------------------------------------------------------
    @classmethod
    def build_image_encoder(cls, config, *, saved: Path | None) -> tuple[nn.Module, int]:
        """(encoder returning feature tokens, feature size); ``saved`` is a checkpoint folder to
        rebuild the architecture from, or None to load pretrained weights from their source."""
        raise NotImplementedError

    @classmethod
    def pixel_stats(cls, config) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) the image encoder's pixels are normalised with: the family's ``pixel_mean`` and
        ``pixel_std``, unless it overrides this (resnet_bert's depend on the chosen CNN)."""
        return cls.pixel_mean, cls.pixel_std

    def save_image_encoder(self, directory: Path) -> None:
        """Write what ``build_image_encoder(saved=directory)`` needs (nothing for torchvision)."""

    def image_source(self) -> dict[str, str]:
        """{"param", "source"} of a pretrained image encoder (``pretrained_parts``)."""
        raise NotImplementedError

    def pretrained_parts(self) -> dict[str, dict[str, str]]:
        parts = {"text_encoder.": {"param": "model.text_encoder", "source": self.config.text_encoder}}
        if self.config.image_encoder_is_pretrained():
            parts["image_encoder."] = self.image_source()
        return parts

    # Construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, config, answers: list[str], *, train_texts: list[str] = ()):
        """Build with pretrained weights from their sources (hub id, local folder, package)."""
        param = param_name(config, "text_encoder")
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

    def load_extra(self, directory: Path) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(directory / TEXT_ENCODER_DIR)

    def save_extra(self, directory: Path) -> None:
        self.text_encoder.config.save_pretrained(directory / TEXT_ENCODER_DIR)
        self.tokenizer.save_pretrained(directory / TEXT_ENCODER_DIR)
        self.save_image_encoder(directory)

    # Cached features ------------------------------------------------------------------------
    def feature_fingerprints(self) -> dict[str, str]:
        encoders = {"image": self.image_encoder, "question": self.text_encoder}
        frozen = {"image": self.config.image_training == "frozen", "question": self.config.text_training == "frozen"}
        if self.cached_image_stages:
            encoders["image"] = nn.ModuleList(self.image_encoder.blocks()[:self.cached_image_stages])
            frozen["image"] = True
        return {name: fingerprint(encoders[name]) for name in encoders if frozen[name]}

    @property
    def batches_by_image(self) -> bool:
        return self.cached_image_stages > 0

    @torch.no_grad()
    def encode_image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """A frozen encoder's tokens, or under ``partial`` the feature map its frozen first stages give."""
        if self.cached_image_stages:
            return self.image_encoder.run_stages(self.normalise(pixels), 0, self.cached_image_stages)
        return self.image_encoder(self.normalise(pixels))

    @torch.no_grad()
    def encode_question_features(self, questions: list[str]) -> torch.Tensor:
        tokens = self.tokenize(questions)
        device = self.image_mean.device
        return self.encode_questions(tokens["input_ids"].to(device), tokens["attention_mask"].to(device))

    # Training -----------------------------------------------------------------------------
    @property
    def starts_as_baseline(self) -> bool:
        """Over the question prior, the head starts at zero: the untrained model is the blind baseline."""
        return self.question_prior is not None

    def prepare_for_training(self, train_set, val_set, *, blind) -> dict:
        if self.question_prior is None:
            return {}
        return self.question_prior.set_from(blind, answers=self.answers, encoder=self.config.text_encoder,
                                            where=param_name(self.config, "text_encoder"))

    def param_groups(self) -> list[dict]:
        # LoRA adapters are new weights: they take the new parts' learning rate.
        pretrained = [] if self.config.text_training == "lora" else [p for p in self.text_encoder.parameters() if p.requires_grad]
        if self.config.image_encoder_is_pretrained():
            pretrained += [p for p in self.image_encoder.parameters() if p.requires_grad]
        pretrained_ids = {id(p) for p in pretrained}
        new = [p for p in self.parameters() if p.requires_grad and id(p) not in pretrained_ids]
        groups = [{"params": new, "lr": self.config.lr}]
        if pretrained:
            groups.append({"params": pretrained, "lr": self.config.encoder_lr})
        return groups

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self._frozen_blocks:
            block.eval()  # frozen weights also keep dropout off and batch-norm statistics fixed
        return self

    def tokenize(self, questions: list[str]) -> dict:
        """Token ids padded to the batch's longest question, as the tokenizer's own ``padding=True``
        gives them; each distinct question is tokenised once per model (an epoch repeats every
        question, and a fine-tuned text encoder's batches are collated on the host every step)."""
        missing = [q for q in dict.fromkeys(questions) if q not in self._question_ids]
        if missing:
            encoded = self.tokenizer(missing, truncation=True, max_length=self.config.max_question_tokens)
            self._question_ids.update(zip(missing, encoded["input_ids"]))
        ids = [self._question_ids[q] for q in questions]
        input_ids = torch.full((len(ids), max(map(len, ids))), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, question_ids in enumerate(ids):
            input_ids[row, :len(question_ids)] = torch.tensor(question_ids)
            attention_mask[row, :len(question_ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def collate(self, items: list[dict]) -> dict:
        """Items with cached features (``image_features``, ``question_features``) skip the encoder
        inputs they replace: no pixels are stacked and no questions tokenised for them."""
        batch = {"labels": torch.tensor([item["label"] for item in items], dtype=torch.long)}
        if "image_features" in items[0]:
            batch["image_features"] = torch.stack([item["image_features"] for item in items])
        else:
            batch["pixel_values"] = torch.stack([item["image"] for item in items])
        if "question_features" in items[0]:
            batch["question_features"] = torch.stack([item["question_features"] for item in items])
        else:
            tokens = self.tokenize([item["question"] for item in items])
            batch["input_ids"], batch["attention_mask"] = tokens["input_ids"], tokens["attention_mask"]
        return batch

    # Inference ----------------------------------------------------------------------------
    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float() / 255.0 - self.image_mean) / self.image_std

    def encode_questions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, batch: dict) -> ModelOutput:
        if "image_features" in batch:
            tokens = batch["image_features"]
            if self.cached_image_stages:
                # The cached output of the frozen stages: the trainable ones run on it.
                encoder = self.image_encoder
                tokens = encoder.as_tokens(encoder.run_stages(tokens.to(self.image_proj.weight.dtype),
                                                              self.cached_image_stages))
            if "image_index" in batch:  # one row per distinct image of the batch
                tokens = tokens[batch["image_index"]]
        else:
            tokens = self.image_encoder(self.normalise(batch["pixel_values"]))
        if "question_features" in batch:
            question = batch["question_features"]
        else:
            question = self.encode_questions(batch["input_ids"], batch["attention_mask"])
        dtype = self.image_proj.weight.dtype
        image = self.token_dropout(self.image_proj(self.image_norm(tokens.to(dtype))))
        text = self.text_proj(self.text_norm(question.to(dtype)))
        query = text
        for image_query in self.image_queries:
            scores = torch.einsum("bnh,bh->bn", image, image_query(query)) / image.shape[-1] ** 0.5
            attended = torch.einsum("bn,bnh->bh", scores.softmax(-1), image)
            query = query + attended
        parts = [attended, text, attended * text]
        if self.config.scene_vector:
            scene = image.mean(dim=1)
            parts += [scene, scene * text]
        logits = self.classifier(torch.cat(parts, dim=-1))
        if self.question_prior is not None:
            logits = logits + self.question_prior.log_probs(question)
        return ModelOutput(logits=logits, loss=classification_loss(logits, batch.get("labels"), self.part_credit))

    @torch.no_grad()
    def predict(self, batch: dict, top_k: int = 1, mode: str | None = None) -> list[list[tuple[str, float]]]:
        self.check_mode(mode)
        return top_answers(self(batch).logits, self.answers, top_k)
