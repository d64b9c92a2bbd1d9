"""GPU benchmark of the classifier families at the study's sizes (random weights built from configs).

No hub is needed: BERT-base, the CLIP ViT-B/32 vision tower and ViLT-B/32 are built from their
default configs, saved locally and loaded through the same ``from_pretrained`` path as the hub ids.
For each family and strategy, in bf16 and fp32, it trains one epoch of synthetic 224 px questions
through the project's training loop and reports training samples/s and peak GPU memory:

- resnet_bert (ResNet50 + BERT-base) and pubmedclip (CLIP ViT-B/32 + BERT-base): ``full``
  fine-tuning, ``lora_text`` (image encoder frozen and cached, LoRA on BERT) and ``frozen_cached``
  (fusion and head on cached features; feature extraction timed separately);
- vilt (ViLT-B/32): ``full`` and ``lora`` (the paper profile).

    python bench/paper_gpu.py --out bench/results/paper_gpu.json
    python bench/paper_gpu.py --device cpu --batch-size 2 --steps 1 --families resnet_bert   # a smoke run of the same code on the CPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel, ViltConfig, ViltForQuestionAnswering

from vqalab.config import TrainParams, from_mapping
from vqalab.data.dataset import VQADataset
from vqalab.data.features import CachedFeatures, compute_features
from vqalab.data.schema import Record
from vqalab.data.vocab import AnswerVocab
from vqalab.models.lora import LoraSettings
from vqalab.models.pretrained import resolve_pretrained
from vqalab.models.pubmedclip import PubMedClip, PubMedClipConfig
from vqalab.models.resnet_bert import ResNetBert, ResNetBertConfig
from vqalab.models.vilt import Vilt, ViltFamilyConfig
from vqalab.training.device import resolve_device, seed_everything
from vqalab.training.loop import fit

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["is there a fracture in the left femur?", "what organ system is shown?", "is this an mri?",
             "where is the lesion located?", "are the lungs hyperinflated?", "what abnormality is seen?"]
ANSWERS = [f"answer {i}" for i in range(500)]  # about VQA-RAD's vocabulary size


def save_sources(directory: Path) -> dict[str, str]:
    """The study's encoders at full size with random weights, saved where from_pretrained reads them."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained("packaged:all-MiniLM-L6-v2"))  # BERT's uncased vocabulary
    paths = {name: directory / name for name in ("bert", "clip", "vilt")}
    BertModel(BertConfig()).save_pretrained(paths["bert"])
    tokenizer.save_pretrained(paths["bert"])
    CLIPVisionModel(CLIPVisionConfig(patch_size=32)).save_pretrained(paths["clip"])
    ViltForQuestionAnswering(ViltConfig()).save_pretrained(paths["vilt"])
    tokenizer.save_pretrained(paths["vilt"])
    return {name: str(path) for name, path in paths.items()}


def synthetic_split(n: int, split: str, size: int) -> tuple[list[Record], np.ndarray]:
    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8)
    records = [Record(id=f"{split}-{i}", image=f"{split}-{i}.png", question=QUESTIONS[i % len(QUESTIONS)],
                      answer=ANSWERS[i % len(ANSWERS)], answer_raw="", split=split,
                      answer_type="closed" if i % 2 else "open") for i in range(n)]
    return records, images


def variants(sources: dict[str, str]) -> list[tuple[str, str, type, object]]:
    lora = LoraSettings(r=8, alpha=16, dropout=0.05, target_modules=("query", "value"))
    resnet = ResNetBertConfig(image_size=224, image_encoder="resnet50", text_encoder=sources["bert"], text_lora=lora)
    clip = PubMedClipConfig(image_size=224, vision_model=sources["clip"], text_encoder=sources["bert"], text_lora=lora)
    strategies = {"full": dict(image_training="full", text_training="full"),
                  "lora_text": dict(image_training="frozen", text_training="lora"),
                  "frozen_cached": dict(image_training="frozen", text_training="frozen")}
    rows = [(family, strategy, cls, dataclasses.replace(config, **changes))
            for family, cls, config in (("resnet_bert", ResNetBert, resnet), ("pubmedclip", PubMedClip, clip))
            for strategy, changes in strategies.items()]
    vilt = ViltFamilyConfig(image_size=224, backbone=sources["vilt"], tokenizer=sources["vilt"])
    rows += [("vilt", "full", Vilt, vilt), ("vilt", "lora", Vilt, dataclasses.replace(vilt, lora=lora))]
    return rows


def measure(cls, config, *, precision: str, device: torch.device, batch_size: int, steps: int) -> dict:
    seed_everything(0)
    n = batch_size * steps
    train_records, images = synthetic_split(n, "train", config.image_size)
    val_records, _ = synthetic_split(batch_size, "val", config.image_size)
    rows = {r.image: i for i, r in enumerate(train_records)} | {r.image: i for i, r in enumerate(val_records)}
    vocab = AnswerVocab(ANSWERS)
    model = cls.build(config, ANSWERS).to(device)
    start = time.perf_counter()
    questions = sorted(set(QUESTIONS))
    tensors, fingerprints = compute_features(model, images, questions, batch_size=batch_size, device=device)
    features = CachedFeatures.from_tensors(tensors, fingerprints, questions)
    features_s = time.perf_counter() - start if fingerprints else 0.0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    # params.yaml's training settings (gradient clipping, warm-up), for one epoch of this variant.
    train = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    params = from_mapping(TrainParams, {**train, "max_epochs": 1, "batch_size": batch_size, "precision": precision,
                                        "device": str(device)}, "train")
    result = fit(model, VQADataset(train_records, images, rows, vocab, features),
                 VQADataset(val_records, images, rows, vocab, features), params=params, device=device, seed=0)
    return {
        "train_samples_per_s": result.history[0]["train_samples_per_s"],
        "features_s_per_sample": features_s / n,
        "peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "trainable_params": model.parameter_counts()["trainable_params"],
        "total_params": model.parameter_counts()["total_params"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per variant (one epoch)")
    parser.add_argument("--precisions", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--families", nargs="+", default=["resnet_bert", "pubmedclip", "vilt"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/paper_gpu.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = save_sources(Path(tmp))
        for family, strategy, cls, config in variants(sources):
            if family not in args.families:
                continue
            for precision in args.precisions:
                figures = measure(cls, config, precision=precision, device=device, batch_size=args.batch_size, steps=args.steps)
                results.append({"family": family, "strategy": strategy, "precision": precision, **figures})
                print(json.dumps(results[-1]), flush=True)
    print("\n| family | strategy | precision | train samples/s | peak GPU MB | trainable params |")
    print("|---|---|---|---|---|---|")
    for r in results:
        peak = "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f}"
        print(f"| {r['family']} | {r['strategy']} | {r['precision']} | {r['train_samples_per_s']:.1f} | {peak} | {r['trainable_params']:,} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps({"device": str(device), "torch": torch.__version__, "batch_size": args.batch_size,
                                   "rows": results}, indent=1))
    tmp_out.replace(args.out)


if __name__ == "__main__":
    main()
