"""GPU benchmark of the classifier families at the study's sizes, against a plain PyTorch reference.

Every model is built by ``vqalab.models.registry.build_model`` from the parameters conf/ composes
for a variant (``--variants``: -S values, e.g. ``model=resnet_bert strategy=full
train.precision=bf16``) over the paper profile on VQA-RAD, its pretrained sources replaced by the
same architectures with random weights, saved locally and loaded through the same
``from_pretrained`` path as hub ids (a GPU machine without network has no hub). Frozen encoders'
features are the features stage's (``vqalab.pipeline.features``). Each training step is the loop's
(``vqalab.benchmark.loopstep.LoopStep``: fit's batches, collator, optimiser, schedule, autocast,
clipping).

The reference, timed in the same run, interleaved with the vqalab variants: torchvision's CNN of
the same name in channels_last + BERT of the same config (sequence 32), a linear head over the
concatenated pooled features, fused AdamW (on CUDA), TF32 and cudnn.benchmark - at the same batch
and precision as each resnet_bert variant that fine-tunes both encoders. Synthetic questions are
long enough that vqalab's tokenizer truncates them to ``max_question_tokens`` (32): both see
sequences of the same length.

Timing: ``vqalab.benchmark.timing.measure`` (warm-up excluded, variants interleaved, >= 3 rounds,
median).

    python bench/paper_gpu.py --out bench/results/paper_gpu.json
    python bench/paper_gpu.py --variants "model=pubmedclip" "model=resnet_bert strategy=partial"
    python bench/paper_gpu.py --sizes tiny --device cpu --batch-sizes 4 --steps 1 --warmup 1   # a smoke run

Run from the project root (conf/ is read from there).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import tempfile
from pathlib import Path

import torch
import torchvision
import transformers
from torch import nn
from transformers import (BertConfig, BertModel, BertTokenizerFast, CLIPVisionConfig, CLIPVisionModel, ViltConfig,
                          ViltForQuestionAnswering)

from vqalab.benchmark.common import composed_params, overrides, write_results
from vqalab.benchmark.loopstep import WORDS, LoopStep, synthetic_data
from vqalab.benchmark.timing import Variant, environment, fast_math, measure
from vqalab.models.registry import build_model, chosen_family_config
from vqalab.pipeline.features import frozen_encoder_features
from vqalab.runtime import resolve_device, resolve_precision

transformers.utils.logging.disable_progress_bar()  # one loading bar per variant would bury the table

STUDY_QUESTIONS = 3064  # VQA-RAD frame's training questions
ANSWERS = 500  # about VQA-RAD's answer vocabulary
REFERENCE_SEQUENCE = 32

# The study's architectures and training questions (VQA-RAD frame's); "tiny" keeps every code path
# at sizes a CPU smoke run can afford.
SIZES = {
    "paper": dict(image_size=224, cnn="resnet50", bert=dict(), clip=dict(patch_size=32), vilt=dict(), images=64,
                  questions=STUDY_QUESTIONS),
    "tiny": dict(image_size=32, cnn="resnet18",
                 bert=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
                 clip=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           image_size=32, patch_size=16),
                 vilt=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           patch_size=16, max_image_length=-1),
                 images=8, questions=64),
}
# The study's setting, under every variant.
STUDY = ["dataset=vqa_rad", "profile=paper"]
# resnet_bert fine-tuned in fp32 and in bf16 (each beside the reference step) and on cached features.
DEFAULT_VARIANTS = ["model=resnet_bert strategy=full train.precision=fp32",
                    "model=resnet_bert strategy=full train.precision=bf16",
                    "model=resnet_bert strategy=frozen train.precision=fp32"]
PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}  # autocast dtype -> name


def save_sources(directory: Path, sizes: dict) -> dict[str, str]:
    """Random-weight encoders of the study's architectures, where ``from_pretrained`` reads them.
    The BERT tokenizer's vocabulary is the benchmark's question words (every word one token)."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "?", *sorted(set(WORDS))]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(directory / "vocab.txt"))
    paths = {name: directory / name for name in ("bert", "clip", "vilt")}
    BertModel(BertConfig(**sizes["bert"])).save_pretrained(paths["bert"])
    tokenizer.save_pretrained(paths["bert"])
    CLIPVisionModel(CLIPVisionConfig(**sizes["clip"])).save_pretrained(paths["clip"])
    ViltForQuestionAnswering(ViltConfig(**sizes["vilt"])).save_pretrained(paths["vilt"])
    tokenizer.save_pretrained(paths["vilt"])
    return {name: str(path) for name, path in paths.items()}


def variant_overrides(variant: list[str], *, sources: dict, sizes: dict, batch_size: int,
                      device: torch.device) -> list[str]:
    """The overrides of one variant: the study's setting, the variant's own, then its family's
    pretrained sources replaced by the random-weight ones at the benchmark's sizes."""
    family = composed_params([*STUDY, *variant]).model
    replaced = {"resnet_bert": {"model.text_encoder": sources["bert"], "model.image_weights": None,
                                "model.image_encoder": sizes["cnn"]},
                "pubmedclip": {"model.text_encoder": sources["bert"], "model.vision_model": sources["clip"]},
                "vilt": {"model.backbone": sources["vilt"], "model.tokenizer": sources["vilt"]}}
    if family not in replaced:
        raise SystemExit(f"--variants: {' '.join(variant)} chooses {family}; this benchmark times the classifier "
                         f"families {sorted(replaced)} (qwen2vl: bench/qwen2vl_gpu.py)")
    values = {**replaced[family], "model.image_size": sizes["image_size"], "model.batch_size": batch_size,
              "train.device": str(device)}
    return [*STUDY, *variant, *overrides(values)]


class ReferenceStep:
    """The plain PyTorch step the vqalab resnet_bert figures are divided by (see the docstring)."""

    def __init__(self, *, cnn: str, bert: dict, answers: int, batch_size: int, image_size: int, precision: str,
                 device: torch.device):
        self.cnn = torchvision.models.get_model(cnn, weights=None)
        features = self.cnn.fc.in_features
        self.cnn.fc = nn.Identity()
        self.cnn.to(device, memory_format=torch.channels_last)
        self.bert = BertModel(BertConfig(**bert)).to(device)
        self.head = nn.Linear(features + self.bert.config.hidden_size, answers).to(device)
        parameters = [*self.cnn.parameters(), *self.bert.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.AdamW(parameters, lr=1e-4, fused=device.type == "cuda")
        self.amp_dtype = resolve_precision(precision, device)
        if self.amp_dtype == torch.float16:
            raise ValueError("the reference step runs fp32 or bf16 (fp16 would need a gradient scaler)")
        self.device = device
        self.pixels = torch.randn(batch_size, 3, image_size, image_size, device=device).contiguous(
            memory_format=torch.channels_last)
        self.input_ids = torch.randint(5, self.bert.config.vocab_size, (batch_size, REFERENCE_SEQUENCE), device=device)
        self.attention_mask = torch.ones_like(self.input_ids)
        self.labels = torch.randint(0, answers, (batch_size,), device=device)

    def __call__(self) -> None:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            pooled = self.bert(input_ids=self.input_ids, attention_mask=self.attention_mask).pooler_output
            logits = self.head(torch.cat([self.cnn(self.pixels), pooled], dim=-1))
            loss = nn.functional.cross_entropy(logits.float(), self.labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def planned_variants(texts: list[list[str]], batch_sizes: list[int], *, device: torch.device, sources: dict,
                     sizes: dict) -> dict[str, tuple]:
    """{row name: (variant, batch size, params, precision)} of every variant at every batch size,
    composed before any model is built: the table (and gpu_report) tell rows apart by model, strategy,
    batch size and precision, so two variants that share them fail here, not after the GPU work."""
    planned: dict[str, tuple] = {}
    for variant in texts:
        for batch_size in batch_sizes:
            params = composed_params(variant_overrides(variant, sources=sources, sizes=sizes, batch_size=batch_size,
                                                       device=device))
            precision = PRECISION_NAMES[resolve_precision(params.train.precision, device)]
            name = f"{params.model}/{params.strategy}/b{batch_size}/{precision}"
            if name in planned:
                raise SystemExit(f"--variants {' '.join(variant)!r} and {' '.join(planned[name][0])!r} both time "
                                 f"{name}: variants must differ in model, strategy or precision")
            planned[name] = (variant, batch_size, params, precision)
    return planned


def variants_for(args, device: torch.device, sources: dict, sizes: dict, data) -> list[Variant]:
    variants, features_cache = [], {}
    planned = planned_variants(args.variants, args.batch_sizes, device=device, sources=sources, sizes=sizes)
    for name, (variant, batch_size, params, precision) in planned.items():
        model = build_model(params, data).to(device)
        # The features stage's, once per what they depend on (the same weights at every batch size).
        key = json.dumps(chosen_family_config(params).feature_spec(seed=params.seed), sort_keys=True, default=str)
        if key not in features_cache:
            features_cache[key] = frozen_encoder_features(params, data, device=device)
        features = features_cache[key]
        features.check(model, where="the benchmark's features")
        step = LoopStep(model, data.split("train", features), params=params.train, device=device)
        counts = model.parameter_counts()
        info = {"family": params.model, "strategy": params.strategy, "overrides": " ".join(variant),
                "batch_size": batch_size, "precision": precision, "kind": "vqalab",
                "trainable_params": counts["trainable_params"], "total_params": counts["total_params"]}
        needs_reference = args.reference and params.model == "resnet_bert" and fine_tunes_both_encoders(params)
        if needs_reference:
            info["reference"] = f"reference/b{batch_size}/{precision}"
        variants.append(Variant(name, step, batch_size, info=info))
        if needs_reference and info["reference"] not in {v.name for v in variants}:
            variants.append(reference_variant(sizes, batch_size=batch_size, precision=precision, device=device))
    return variants


def fine_tunes_both_encoders(params) -> bool:
    """Whether a fusion variant trains what the reference step trains: every weight of both encoders."""
    return params.family["image_training"] == params.family["text_training"] == "full"


def reference_variant(sizes: dict, *, batch_size: int, precision: str, device: torch.device) -> Variant:
    step = ReferenceStep(cnn=sizes["cnn"], bert=sizes["bert"], answers=ANSWERS, batch_size=batch_size,
                         image_size=sizes["image_size"], precision=precision, device=device)
    return Variant(f"reference/b{batch_size}/{precision}", step, batch_size, context=lambda: fast_math(True),
                   info={"family": "reference", "strategy": "plain pytorch", "batch_size": batch_size,
                         "precision": precision, "kind": "reference"})


def add_ratios(rows: list[dict]) -> None:
    """Each row that has a reference (a resnet_bert variant fine-tuning both encoders) over it."""
    speeds = {r["name"]: r["samples_per_s"] for r in rows}
    for row in rows:
        reference = speeds.get(row.get("reference"))
        row["reference_samples_per_s"] = reference
        row["ratio_to_reference"] = row["samples_per_s"] / reference if reference else None


def parse_variants(texts: list[str]) -> list[list[str]]:
    """Each variant's -S values (space-separated in one argument), checked as overrides of the study's setting."""
    variants = []
    for text in texts:
        variant = shlex.split(text)
        try:
            composed_params([*STUDY, *variant])
        except ValueError as err:
            raise SystemExit(f"--variants: {text!r} does not compose over {' '.join(STUDY)}: {err}") from None
        variants.append(variant)
    return variants


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", choices=sorted(SIZES), default="paper")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, metavar="OVERRIDES",
                        help="what to time: each -S values over " + " ".join(STUDY) + ", space-separated in one "
                             "argument (default: " + "; ".join(DEFAULT_VARIANTS) + ")")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="default: the tiny profile's batch on VQA-RAD and the paper profile's")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per variant")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant and round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (the median is reported)")
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    parser.add_argument("--out", type=Path, default=Path("bench/results/paper_gpu.json"))
    args = parser.parse_args(argv)
    args.variants = parse_variants(args.variants)
    device = resolve_device(args.device, setting="--device")
    # The paper profile's batch (fine-tuning on a GPU) and the tiny recipe's (the cached head).
    paper_batch = composed_params(STUDY).train.batch_size
    cached_batch = composed_params(["dataset=vqa_rad"]).train.batch_size
    args.batch_sizes = args.batch_sizes or sorted({cached_batch, paper_batch})
    sizes = SIZES[args.sizes]
    # The sizes' questions, rounded up so every batch is full.
    multiple = math.lcm(*args.batch_sizes)
    data = synthetic_data(questions=math.ceil(sizes["questions"] / multiple) * multiple, images=sizes["images"],
                          image_size=sizes["image_size"], answers=ANSWERS, words=REFERENCE_SEQUENCE + 8)
    with tempfile.TemporaryDirectory() as tmp:
        sources = save_sources(Path(tmp), sizes)
        variants = variants_for(args, device, sources, sizes, data)
        timings = measure(variants, device=device, warmup=args.warmup, steps=args.steps, repeats=args.repeats)
    rows = [t.row() for t in timings]
    add_ratios(rows)
    lines = ["| variant | samples/s (median) | min-max | ms/step | x reference | peak GiB | trainable params |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "-" if r["ratio_to_reference"] is None else f"{r['ratio_to_reference']:.2f}"
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
        params = f"{r['trainable_params']:,}" if "trainable_params" in r else "-"
        lines.append(f"| {r['name']} | {r['samples_per_s']:.1f} | {r['samples_per_s_min']:.1f}-"
                     f"{r['samples_per_s_max']:.1f} | {r['step_ms']:.1f} | {ratio} | {peak} | {params} |")
    print("\n" + "\n".join(lines))
    write_results(args.out, {"environment": environment(device), "sizes": args.sizes, "paper_batch_size": paper_batch,
                             "cached_batch_size": cached_batch, "study_questions": STUDY_QUESTIONS,
                             "warmup": args.warmup, "steps": args.steps, "repeats": args.repeats,
                             "variants": [" ".join(variant) for variant in args.variants], "rows": rows},
                  table="\n".join(lines))


if __name__ == "__main__":
    main()
