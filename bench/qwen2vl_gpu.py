"""GPU benchmark of the qwen2vl family at the published Qwen2-VL-2B sizes (random weights, no hub).

The model is built by ``vqalab.models.registry.build_model`` from the paper profile as conf/
composes it (VQA-RAD, model=qwen2vl) with the checkpoint replaced by a random-init Qwen2-VL of
Qwen2-VL-2B-Instruct's sizes:
the family's own random-init model (``vqalab.models.qwen2vl_config.tiny_model_config``) at those
sizes, with Qwen's full 151,936-token vocabulary and tied embeddings (a byte-level BPE fitted to
the synthetic questions stands in for Qwen's tokenizer), saved locally and loaded through the
family's ``from_pretrained`` path - the same dtype, attention implementation and LoRA as a real
run. Measured, interleaved (``vqalab.benchmark.timing.measure``):

- LoRA training samples/s at 448 px with and without gradient checkpointing: the loop's step
  (``vqalab.benchmark.loopstep.LoopStep``) on the family's collator, host collation included;
- greedy generation samples/s: ``model.predict(mode="generate")`` on the evaluation batches
  (``predict_dataset``'s step), ``max_new_tokens`` as the profile sets it. Random weights rarely
  emit the end token, so every answer runs the full ``max_new_tokens``: an upper bound on the cost.

    python bench/qwen2vl_gpu.py --out bench/results/qwen2vl_gpu.json
    python bench/qwen2vl_gpu.py --sizes tiny --device cpu --image-px 56 --batch-size 2 --steps 1 --warmup 1

Run from the project root (conf/ is read from there).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
from pathlib import Path

import torch
import transformers
from transformers import Qwen2VLForConditionalGeneration

from vqalab.benchmark.common import composed_params, overrides, write_results
from vqalab.benchmark.loopstep import LoopStep, loop_batches, synthetic_data
from vqalab.benchmark.timing import Variant, environment, measure
from vqalab.models.qwen2vl import build_processor
from vqalab.models.qwen2vl_config import tiny_model_config
from vqalab.models.qwen2vl_tokenizer import fit_tokenizer
from vqalab.models.registry import build_model, chosen_family_config
from vqalab.runtime import resolve_device, to_device

transformers.utils.logging.disable_progress_bar()

STUDY_QUESTIONS = 3064
# The study's setting: the paper profile of qwen2vl on VQA-RAD.
STUDY = ["dataset=vqa_rad", "model=qwen2vl", "profile=paper"]
# The random-init model's sizes, as qwen2vl's family config gives them: Qwen/Qwen2-VL-2B-Instruct's
# published config.json, and a smoke run's.
SIZES = {
    "2b": dict(hidden_size=1536, intermediate_size=8960, layers=28, heads=12, kv_heads=2, mrope_section=[16, 24, 24],
               vision_embed_dim=1280, vision_depth=32, vision_heads=16),
    "tiny": dict(hidden_size=64, intermediate_size=128, layers=1, heads=2, kv_heads=1, mrope_section=[4, 6, 6],
                 vision_embed_dim=32, vision_depth=1, vision_heads=2),
}
# Qwen2-VL's vocabulary: the logits, the memory they take and the LM head's cost are a real run's.
QWEN_VOCABULARY = 151936


def save_random_checkpoint(directory: Path, sizes: str, data, *, image_px: int, device: torch.device) -> None:
    """A random-init Qwen2-VL of ``sizes`` and its processor, as ``from_pretrained`` reads them."""
    # The family's random-init (tiny profile) config at these sizes.
    random_init = {f"model.{key}": value for key, value in {**SIZES[sizes], "image_size": image_px}.items()}
    config = chosen_family_config(composed_params(["model=qwen2vl", *overrides(random_init)]))
    tokenizer = fit_tokenizer([r.question for r in data.records] + data.vocab.answers, config.tokenizer_vocab_size)
    model_config = tiny_model_config(config, tokenizer)
    model_config.text_config.vocab_size = QWEN_VOCABULARY
    model_config.tie_word_embeddings = True
    # Initialised on the device in bf16 there: 2B parameters initialise in seconds on a GPU, minutes on a CPU.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(model_config, dtype=dtype)
    model.save_pretrained(directory)
    del model
    build_processor(tokenizer, config.image_size).save_pretrained(directory)


def evaluating(model):
    @contextlib.contextmanager
    def context():
        model.eval()
        try:
            yield
        finally:
            model.train()
    return context


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", choices=sorted(SIZES), default="2b")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-px", type=int, default=None, help="default: the paper profile's image_size (448)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant and round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = resolve_device(args.device, setting="--device")
    paper = composed_params(STUDY)
    image_px = args.image_px or paper.family["image_size"]
    batch = args.batch_size
    # VQA-RAD-like questions (about 8 words) and short answers; every batch full.
    questions = math.ceil(STUDY_QUESTIONS / batch) * batch
    data = synthetic_data(questions=questions, val_questions=batch * 4, images=16, image_size=image_px,
                          answers=200, words=8)
    variants, models = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        save_random_checkpoint(Path(tmp), args.sizes, data, image_px=image_px, device=device)
        for checkpointing in (False, True):
            params = composed_params([*STUDY, *overrides({
                "model.checkpoint": tmp, "model.image_size": image_px, "model.batch_size": batch,
                "model.gradient_checkpointing": checkpointing, "train.device": str(device)})])
            model = build_model(params, data).to(device)
            models[checkpointing] = (model, params)
            step = LoopStep(model, data.split("train"), params=params.train, device=device)
            counts = model.parameter_counts()
            variants.append(Variant(f"qwen2vl/lora/train/ckpt={'on' if checkpointing else 'off'}", step, batch, info={
                "family": "qwen2vl", "mode": "train", "gradient_checkpointing": checkpointing, "batch_size": batch,
                "image_px": image_px, "precision": params.train.precision,
                "attn_implementation": model.model.config._attn_implementation,
                "vision_without_grad": model.vision_without_grad, **counts}))
    # Generation with the paper profile's model (gradient checkpointing plays no part in inference).
    model, params = models[paper.family["gradient_checkpointing"]]
    val = data.split("val")
    eval_batches = loop_batches(model, val, batch_size=batch, device=device)  # the evaluation's batches, shuffled

    def generate():
        model.predict(to_device(next(eval_batches), device), mode="generate")

    variants.append(Variant("qwen2vl/generate", torch.no_grad()(generate), batch, context=evaluating(model), info={
        "family": "qwen2vl", "mode": "generate", "batch_size": batch, "image_px": image_px,
        "max_new_tokens": model.config.max_new_tokens,
        "attn_implementation": model.model.config._attn_implementation}))
    timings = measure(variants, device=device, warmup=args.warmup, steps=args.steps, repeats=args.repeats)
    rows = [t.row() for t in timings]
    lines = ["| variant | samples/s (median) | min-max | ms/step | peak GiB |", "|---|---|---|---|---|"]
    for r in rows:
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        lines.append(f"| {r['name']} | {r['samples_per_s']:.2f} | {r['samples_per_s_min']:.2f}-"
                     f"{r['samples_per_s_max']:.2f} | {r['step_ms']:.0f} | {peak} |")
    print("\n" + "\n".join(lines))
    if args.out:
        write_results(args.out, {"environment": environment(device), "sizes": args.sizes,
                                 "paper_gradient_checkpointing": paper.family["gradient_checkpointing"],
                                 "warmup": args.warmup, "steps": args.steps, "repeats": args.repeats, "rows": rows},
                      table="\n".join(lines))


if __name__ == "__main__":
    main()
