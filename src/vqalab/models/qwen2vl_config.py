"""qwen2vl's family config (params.yaml's ``model`` section when model.name is qwen2vl) and what it fixes of the
model: the image processor's pixel budget, and the architecture of the random-init (tiny) model.
"""

from __future__ import annotations

from dataclasses import dataclass

from vqalab.config import check_resize
from vqalab.models.family_configs import LoraSettings

PATCH_ALIGN = 28  # Qwen2-VL: 14 px patches, merged 2 x 2 into one token


@dataclass(frozen=True, kw_only=True)
class Qwen2VLFamilyConfig:
    image_size: int  # the processor resizes to this many pixels (image_size^2), aligned to 28
    # How preprocess makes images square (squash | crop | pad): pad keeps the aspect ratio, as Qwen2-VL does.
    resize: str
    # A Qwen2-VL checkpoint (hub id or local folder), or null for a random-init model of the sizes below.
    checkpoint: str | None
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    intermediate_size: int
    mrope_section: tuple[int, ...]  # temporal/height/width rotary split; sums to head_dim / 2
    vision_embed_dim: int
    vision_depth: int
    vision_heads: int
    tokenizer_vocab_size: int  # BPE fitted to the training text (random-init model only)
    lora: LoraSettings | None  # null: train every weight
    load_in_4bit: bool  # QLoRA: needs CUDA and bitsandbytes
    gradient_checkpointing: bool  # on a GPU
    max_new_tokens: int
    lr: float  # every trainable weight: the adapters, or the whole random-init model
    # The global training batch of this family and profile (its lr goes with it).
    batch_size: int

    def __post_init__(self) -> None:
        check_resize(self.resize)
        if self.image_size < PATCH_ALIGN:
            raise ValueError(f"image_size must be >= {PATCH_ALIGN} (one merged Qwen2-VL patch), got {self.image_size}")
        if self.checkpoint is None:
            if self.hidden_size % self.heads or self.heads % self.kv_heads:
                raise ValueError(f"hidden_size {self.hidden_size}, heads {self.heads} and kv_heads {self.kv_heads} "
                                 f"must divide: hidden_size by heads, heads by kv_heads")
            if 2 * sum(self.mrope_section) != self.hidden_size // self.heads:
                raise ValueError(f"mrope_section {list(self.mrope_section)} must sum to head_dim / 2 = "
                                 f"{self.hidden_size // self.heads // 2}")
            if self.vision_embed_dim % self.vision_heads:
                raise ValueError(f"vision_embed_dim {self.vision_embed_dim} is not divisible by vision_heads {self.vision_heads}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.load_in_4bit and self.lora is None:
            raise ValueError("load_in_4bit needs lora: 4-bit weights cannot be trained directly")

    def pretrained_sources(self) -> dict[str, str]:
        return {"checkpoint": self.checkpoint} if self.checkpoint is not None else {}

    def feature_spec(self, *, seed: int) -> dict:
        return {}  # nothing frozen is cached: the model reads pixels and text


def pixel_budget(image_size: int) -> dict[str, int]:
    """The processor's min and max pixels (``shortest_edge`` / ``longest_edge``): image_size^2, aligned."""
    side = max(PATCH_ALIGN, round(image_size / PATCH_ALIGN) * PATCH_ALIGN)
    return {"shortest_edge": side * side, "longest_edge": side * side}


def tiny_model_config(config: Qwen2VLFamilyConfig, tokenizer):
    """The transformers config of the random-init model: the family config's sizes, and the special
    token ids of ``tokenizer`` (fitted to the training text, so they differ from Qwen's)."""
    from transformers import Qwen2VLConfig

    token = tokenizer.convert_tokens_to_ids
    return Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=config.hidden_size,
                         intermediate_size=config.intermediate_size, num_hidden_layers=config.layers,
                         num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                          "mrope_section": list(config.mrope_section)},
                         bos_token_id=token("<|endoftext|>"), eos_token_id=token("<|im_end|>"),
                         pad_token_id=token("<|endoftext|>")),
        vision_config=dict(depth=config.vision_depth, embed_dim=config.vision_embed_dim,
                           hidden_size=config.hidden_size, num_heads=config.vision_heads),
        image_token_id=token("<|image_pad|>"), video_token_id=token("<|video_pad|>"),
        vision_start_token_id=token("<|vision_start|>"), vision_end_token_id=token("<|vision_end|>"))
