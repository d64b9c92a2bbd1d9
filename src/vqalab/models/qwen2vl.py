"""qwen2vl: the generative family - Qwen2-VL answering in words, fine-tuned with LoRA on its LLM.

Paper profile: ``Qwen/Qwen2-VL-2B-Instruct`` with its processor, images at 448 px (the
processor's min/max pixels), LoRA on the LLM's q/k/v/o projections, bf16 and (optionally)
gradient checkpointing on a GPU, optional 4-bit loading (QLoRA). Tiny profile: a small random-init
Qwen2-VL (vision output size = text hidden size) with Qwen2-VL's image processor and a byte-level
BPE tokenizer fitted to the training questions and answers, carrying Qwen's special tokens and a
chat template of Qwen's form (``qwen2vl_tokenizer``). The family config, its pixel budget and the
tiny model's architecture are in ``qwen2vl_config``.

Training: the image and question in the user turn, the answer in the assistant turn; the loss is
on the answer tokens (and the closing ``<|im_end|>``) only. Prediction has two modes, reported
side by side: ``generate`` (greedy decoding, the answer read from the text and normalised like
every other family's) and ``candidates`` (each candidate answer scored by the model's likelihood,
the best one taken: for a closed question the answers closed questions have in train - yes and no,
but also "diffuse" or "left" -, for any other question every training answer).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vqalab.config import param_name
from vqalab.data.normalize import normalize_answer
from vqalab.io import read_json, write_json
from vqalab.models.base import ModelOutput, VQAModel
from vqalab.models.lora import apply_lora
from vqalab.pretrained import from_pretrained
from vqalab.models.qwen2vl_config import Qwen2VLFamilyConfig, pixel_budget, tiny_model_config
from vqalab.models.qwen2vl_tokenizer import fit_tokenizer

PROCESSOR_DIR = "processor"
MODEL_CONFIG_DIR = "model_config"
CLOSED_ANSWERS_FILE = "closed_answers.json"
IGNORE = -100


def build_processor(tokenizer, image_size: int):
    """The random-init model's processor (a checkpoint brings its own): Qwen2-VL's image processor
    at the pixel budget of ``image_size``, with ``tokenizer`` and its chat template."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(size=pixel_budget(image_size)),
                            tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                            chat_template=tokenizer.chat_template)


class Qwen2VL(VQAModel):
    family = "qwen2vl"
    description = "Qwen2-VL, a generative vision-language model that writes its answer"
    prediction_modes = ("generate", "candidates")

    def __init__(self, config: Qwen2VLFamilyConfig, answers: list[str], *, model: nn.Module, processor):
        super().__init__()
        self.config = config
        self.answers = list(answers)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model_config = model.config
        if config.load_in_4bit:
            # QLoRA as peft prepares it: norms in fp32, input gradients on, checkpointing as asked.
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
        elif config.gradient_checkpointing and torch.cuda.is_available():
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()  # frozen embeddings: LoRA gradients must still flow through
        self.model = apply_lora(model, config.lora)
        self.vision_without_grad = run_frozen_vision_without_grad(self.model)
        self._end_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        # The candidates of a closed question: set from the training records, saved with the checkpoint.
        self.closed_answers: list[str] = []

    # Construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, config: Qwen2VLFamilyConfig, answers: list[str], *, train_texts: list[str] = ()) -> "Qwen2VL":
        from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

        if config.checkpoint is None:
            tokenizer = fit_tokenizer([*train_texts, *answers], config.tokenizer_vocab_size)
            return cls(config, answers, model=Qwen2VLForConditionalGeneration(tiny_model_config(config, tokenizer)),
                       processor=build_processor(tokenizer, config.image_size))
        param = param_name(config, "checkpoint")
        processor = from_pretrained(AutoProcessor, config.checkpoint, param=param)
        processor.image_processor.size = pixel_budget(config.image_size)
        model = from_pretrained(Qwen2VLForConditionalGeneration, config.checkpoint, param=param, **load_options(config))
        return cls(config, answers, model=model, processor=processor)

    @classmethod
    def from_saved(cls, directory: Path, config: Qwen2VLFamilyConfig, answers: list[str]) -> "Qwen2VL":
        from transformers import AutoProcessor, Qwen2VLConfig, Qwen2VLForConditionalGeneration

        processor = AutoProcessor.from_pretrained(directory / PROCESSOR_DIR)
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig.from_pretrained(directory / MODEL_CONFIG_DIR))
        return cls(config, answers, model=model, processor=processor)

    def pretrained_parts(self) -> dict[str, dict[str, str]]:
        return {"model.": {"param": "model.checkpoint", "source": self.config.checkpoint}} if self.config.checkpoint else {}

    def load_extra(self, directory: Path) -> None:
        if not (directory / CLOSED_ANSWERS_FILE).is_file():
            raise FileNotFoundError(f"{directory} lacks {CLOSED_ANSWERS_FILE} (the closed questions' candidate answers): "
                                    f"it was made by an older vqalab; retrain it (dvc repro)")
        self.closed_answers = read_json(directory / CLOSED_ANSWERS_FILE)
        from transformers import AutoProcessor

        self.processor = AutoProcessor.from_pretrained(directory / PROCESSOR_DIR)
        self.tokenizer = self.processor.tokenizer

    def save_extra(self, directory: Path) -> None:
        self.processor.save_pretrained(directory / PROCESSOR_DIR)
        self.model_config.save_pretrained(directory / MODEL_CONFIG_DIR)
        write_json(directory / CLOSED_ANSWERS_FILE, self.closed_answers)

    def prepare_for_training(self, train_set, val_set, *, blind) -> dict:
        answers = set(self.answers)
        self.closed_answers = sorted({r.answer for r in train_set.records if r.answer_type == "closed"} & answers)
        return {"closed_candidates": len(self.closed_answers)}

    def param_groups(self) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": self.config.lr}]

    # Batches ------------------------------------------------------------------------------
    def prompts(self, items: list[dict]) -> list[str]:
        return [self.processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": item["question"]}]}],
            add_generation_prompt=True) for item in items]

    def encode(self, texts: list[str], images: list[torch.Tensor], *, padding_side: str) -> dict:
        return dict(self.processor(text=texts, images=images, return_tensors="pt", padding=True,
                                   padding_side=padding_side))

    def collate(self, items: list[dict]) -> dict:
        images = [item["image"] for item in items]
        prompts = self.prompts(items)
        full = self.encode([p + item["answer"] + "<|im_end|>" for p, item in zip(prompts, items)], images,
                           padding_side="right")
        # The prompt is a prefix of each full sequence: its tokens, left-padded, are the generation
        # input. Cut from the full encoding instead of encoding the prompts again, which ran the
        # image processor twice per batch (its resizing is most of the collator's host time).
        merge = self.processor.image_processor.merge_size ** 2
        image_tokens = (full["image_grid_thw"].prod(-1) // merge).tolist()
        prompt_lengths = [len(ids) - 1 + n for ids, n in zip(self.tokenizer(prompts)["input_ids"], image_tokens)]
        width = max(prompt_lengths)
        prompt_ids = torch.full((len(items), width), self.tokenizer.pad_token_id, dtype=full["input_ids"].dtype)
        prompt_mask = torch.zeros((len(items), width), dtype=full["attention_mask"].dtype)
        prompt_types = torch.zeros((len(items), width), dtype=full["mm_token_type_ids"].dtype)
        labels = full["input_ids"].clone()
        for row, length in enumerate(prompt_lengths):
            prompt_ids[row, width - length:] = full["input_ids"][row, :length]
            prompt_mask[row, width - length:] = 1
            prompt_types[row, width - length:] = full["mm_token_type_ids"][row, :length]
            labels[row, :length] = IGNORE  # the prompt, image tokens included
        labels[full["attention_mask"] == 0] = IGNORE  # the padding
        return {
            **full,
            "labels": labels,
            "prompt_input_ids": prompt_ids,
            "prompt_attention_mask": prompt_mask,
            "prompt_mm_token_type_ids": prompt_types,
            "closed": torch.tensor([item["answer_type"] == "closed" for item in items]),
        }

    # Training and inference -----------------------------------------------------------------
    def forward(self, batch: dict) -> ModelOutput:
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         mm_token_type_ids=batch["mm_token_type_ids"], pixel_values=batch["pixel_values"],
                         image_grid_thw=batch["image_grid_thw"], labels=batch["labels"])
        return ModelOutput(logits=out.logits, loss=out.loss)

    @torch.no_grad()
    def predict(self, batch: dict, top_k: int = 1, mode: str | None = None) -> list[list[tuple[str, float]]]:
        if self.check_mode(mode) == "candidates":
            return self.rank_candidates(batch, top_k)
        return self.generate_answers(batch)

    def generate_answers(self, batch: dict) -> list[list[tuple[str, float]]]:
        prompt_length = batch["prompt_input_ids"].shape[1]
        out = self.model.generate(
            input_ids=batch["prompt_input_ids"], attention_mask=batch["prompt_attention_mask"],
            mm_token_type_ids=batch["prompt_mm_token_type_ids"], pixel_values=batch["pixel_values"],
            image_grid_thw=batch["image_grid_thw"], max_new_tokens=self.config.max_new_tokens, do_sample=False,
            eos_token_id=self._end_id, pad_token_id=self.tokenizer.pad_token_id,
            output_scores=True, return_dict_in_generate=True)
        new_tokens = out.sequences[:, prompt_length:]
        # Score: the mean probability of the generated tokens up to the end token.
        probs = torch.stack([s.float().softmax(-1) for s in out.scores], dim=1)
        token_probs = probs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
        results = []
        for row, tokens in enumerate(new_tokens.tolist()):
            length = tokens.index(self._end_id) + 1 if self._end_id in tokens else len(tokens)
            text = self.tokenizer.decode(tokens[:length], skip_special_tokens=True)
            score = float(token_probs[row, :length].mean()) if length else 0.0
            results.append([(normalize_answer(text) if text.strip() else "", score)])
        return results

    def rank_candidates(self, batch: dict, top_k: int) -> list[list[tuple[str, float]]]:
        """Score each candidate answer by the log-likelihood of its tokens after the prompt."""
        results = []
        tokens_per_image = batch["image_grid_thw"].prod(-1)  # rows of pixel_values per image
        offsets = torch.cat([tokens_per_image.new_zeros(1), tokens_per_image.cumsum(0)])
        for row in range(batch["prompt_input_ids"].shape[0]):
            candidates = self.closed_answers if bool(batch["closed"][row]) and self.closed_answers else self.answers
            keep = batch["prompt_attention_mask"][row].bool()
            prompt_ids = batch["prompt_input_ids"][row][keep]
            prompt_types = batch["prompt_mm_token_type_ids"][row][keep]
            pixels = batch["pixel_values"][offsets[row]:offsets[row + 1]]
            scores = []
            for start in range(0, len(candidates), 64):
                chunk = candidates[start:start + 64]
                scores.extend(self.candidate_log_likelihoods(prompt_ids, prompt_types, pixels,
                                                             batch["image_grid_thw"][row:row + 1], chunk))
            probs = torch.tensor(scores).softmax(0)
            best = probs.topk(min(top_k, len(candidates)))
            results.append([(candidates[i], float(p)) for p, i in zip(best.values.tolist(), best.indices.tolist())])
        return results

    def candidate_log_likelihoods(self, prompt_ids, prompt_types, pixels, grid_thw, candidates) -> list[float]:
        device = prompt_ids.device
        answer_ids = [self.tokenizer(c + "<|im_end|>", add_special_tokens=False)["input_ids"] for c in candidates]
        length = len(prompt_ids) + max(len(a) for a in answer_ids)
        n = len(candidates)
        input_ids = torch.full((n, length), self.tokenizer.pad_token_id, dtype=torch.long, device=device)
        attention = torch.zeros((n, length), dtype=torch.long, device=device)
        types = torch.zeros((n, length), dtype=prompt_types.dtype, device=device)
        labels = torch.full((n, length), IGNORE, dtype=torch.long, device=device)
        p = len(prompt_ids)
        for i, ids in enumerate(answer_ids):
            ids = torch.tensor(ids, device=device)
            input_ids[i, :p], input_ids[i, p:p + len(ids)] = prompt_ids, ids
            attention[i, :p + len(ids)] = 1
            types[i, :p] = prompt_types
            labels[i, p:p + len(ids)] = ids
        logits = self.model(input_ids=input_ids, attention_mask=attention, mm_token_type_ids=types,
                            pixel_values=pixels.repeat(n, 1), image_grid_thw=grid_thw.repeat(n, 1)).logits
        log_probs = logits[:, :-1].float().log_softmax(-1)
        targets = labels[:, 1:]
        picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (targets != IGNORE)
        return picked.sum(1).tolist()


def attention_implementation(dtype: torch.dtype | None) -> str:
    """The fastest attention this machine has: FlashAttention-2 on a GPU where the flash-attn
    package is installed (it takes bf16/fp16 only; it also runs the vision tower's variable-length
    attention without a dense mask), else PyTorch's scaled_dot_product_attention."""
    import importlib.util

    if torch.cuda.is_available() and dtype in (torch.bfloat16, torch.float16) and importlib.util.find_spec("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


def run_frozen_vision_without_grad(model: nn.Module) -> bool:
    """Run the vision tower under ``torch.no_grad`` when none of its weights train (LoRA on the LLM).

    transformers 5's ``enable_input_require_grads`` (called for gradient checkpointing) hooks every
    sub-model's input embeddings, the vision tower's patch embedding included: its outputs then
    require grad and the whole frozen tower is recorded, recomputed and back-propagated through
    for nothing. Returns whether the tower was found frozen and wrapped."""
    visual = next((m for m in model.modules() if type(m).__name__.startswith("Qwen2VisionTransformer")), None)
    if visual is None or any(p.requires_grad for p in visual.parameters()):
        return False
    forward = visual.forward

    def forward_without_grad(*args, **kwargs):
        with torch.no_grad():
            return forward(*args, **kwargs)

    visual.forward = forward_without_grad
    return True


def load_options(config: Qwen2VLFamilyConfig) -> dict:
    """bf16 and the fastest attention on a GPU; 4-bit weights (QLoRA) when asked, which needs CUDA
    and bitsandbytes."""
    if not torch.cuda.is_available():
        if config.load_in_4bit:
            raise ValueError(f"load_in_4bit needs a CUDA GPU; set {param_name(config, 'load_in_4bit')}: false on the CPU")
        return {"attn_implementation": attention_implementation(None)}
    options = {"dtype": torch.bfloat16, "attn_implementation": attention_implementation(torch.bfloat16)}
    if config.load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ImportError("load_in_4bit needs bitsandbytes: pip install bitsandbytes") from None
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                            bnb_4bit_compute_dtype=torch.bfloat16)
    return options


MODEL_CLASS = Qwen2VL
