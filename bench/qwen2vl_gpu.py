"""GPU benchmark of the qwen2vl family at the published Qwen2-VL-2B sizes (random weights, no hub).

Measures, in one run on one GPU: LoRA training samples/s and peak GPU memory at 448 px in bf16,
with and without gradient checkpointing, and greedy-generation samples/s. Prints a Markdown table
and writes it as JSON (``--out``).

    python bench/qwen2vl_gpu.py --out bench/results/qwen2vl_gpu.json
    python bench/qwen2vl_gpu.py --sizes tiny --device cpu   # a smoke run of the same code on the CPU
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

from vqalab.models.lora import LoraSettings, apply_lora

# Qwen/Qwen2-VL-2B-Instruct's published config.json.
SIZES = {
    "2b": dict(text=dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}),
               vision=dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16)),
    "tiny": dict(text=dict(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1,
                           rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 6, 6]}),
                 vision=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2)),
}
PROMPT_TOKENS, ANSWER_TOKENS = 24, 4


def build(sizes: str, device: torch.device, dtype: torch.dtype, checkpointing: bool):
    config = Qwen2VLConfig(text_config=SIZES[sizes]["text"], vision_config=SIZES[sizes]["vision"])
    model = Qwen2VLForConditionalGeneration(config).to(device=device, dtype=dtype)
    if checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    lora = LoraSettings(r=16, alpha=32, dropout=0.05, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    return apply_lora(model, lora), config


def batch(config, size: int, image_px: int, device, dtype, *, with_answer: bool):
    """Chat-formatted sequences: <|vision_start|> image tokens <|vision_end|> question [answer]."""
    grid = image_px // 14
    merged = (grid // 2) ** 2
    text = torch.randint(0, 150000, (size, PROMPT_TOKENS + (ANSWER_TOKENS if with_answer else 0)))
    vision = torch.full((size, merged), config.image_token_id)
    ids = torch.cat([torch.full((size, 1), config.vision_start_token_id), vision,
                     torch.full((size, 1), config.vision_end_token_id), text], dim=1).to(device)
    labels = ids.clone()
    labels[:, : ids.shape[1] - (ANSWER_TOKENS if with_answer else 0)] = -100
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": (ids == config.image_token_id).long(),
        "pixel_values": torch.randn(size * grid * grid, 3 * 2 * 14 * 14, device=device, dtype=dtype),
        "image_grid_thw": torch.tensor([[1, grid, grid]] * size, device=device),
        **({"labels": labels} if with_answer else {}),
    }


def measure_training(model, inputs, steps: int, device) -> tuple[float, float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for step in range(steps + 1):
        if step == 1:  # the first step warms up kernels and the allocator
            synchronize(device)
            reset_peak(device)
            start = time.perf_counter()
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return steps * inputs["input_ids"].shape[0] / (time.perf_counter() - start), peak_gib(device)


@torch.no_grad()
def measure_generation(model, inputs, device, new_tokens: int = 8) -> float:
    model.eval()
    model.generate(**inputs, max_new_tokens=2, do_sample=False)
    synchronize(device)
    start = time.perf_counter()
    model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    synchronize(device)
    return inputs["input_ids"].shape[0] / (time.perf_counter() - start)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", choices=sorted(SIZES), default="2b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--image-px", type=int, default=448)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for a GPU (use --sizes tiny --device cpu for a smoke run)")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model, config = build(args.sizes, device, dtype, checkpointing)
        train_inputs = batch(config, args.batch_size, args.image_px, device, dtype, with_answer=True)
        samples_per_s, peak = measure_training(model, train_inputs, args.steps, device)
        generate_inputs = batch(config, args.batch_size, args.image_px, device, dtype, with_answer=False)
        rows.append({"device": gpu, "sizes": args.sizes, "dtype": str(dtype).removeprefix("torch."),
                     "image_px": args.image_px, "batch_size": args.batch_size,
                     "gradient_checkpointing": checkpointing, "lora_train_samples_per_s": round(samples_per_s, 2),
                     "peak_gpu_memory_gib": round(peak, 2),
                     "generate_samples_per_s": round(measure_generation(model, generate_inputs, device), 2)})
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"Qwen2-VL ({args.sizes} sizes, random weights), LoRA r=16 on q/k/v/o, {args.image_px} px, "
          f"batch {args.batch_size}, {rows[0]['dtype']}, on {gpu}\n")
    print("| gradient checkpointing | LoRA training samples/s | peak GPU memory (GiB) | generation samples/s |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['gradient_checkpointing']} | {row['lora_train_samples_per_s']} | {row['peak_gpu_memory_gib']} | "
              f"{row['generate_samples_per_s']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
