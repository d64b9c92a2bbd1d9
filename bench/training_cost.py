"""Training cost per family and strategy, measured side by side in one run on this machine.

For each data set and fusion family (tiny profile from params.yaml), trains with each strategy:

- ``full_fp32``: every encoder fine-tuned, fp32 (the reference);
- ``full_bf16``: the same under bf16 autocast;
- ``partial``: the last ``trainable_blocks`` blocks of each encoder fine-tuned;
- ``lora_text``: image encoder frozen (cached), LoRA on the text encoder;
- ``frozen_cached``: both encoders frozen; only fusion and head train, on cached features;

and reports training samples/s, time to reach the target validation accuracy (the reference's best
validation accuracy minus ``--target-margin``), peak memory (the run's own process), test accuracy,
and each strategy's ratios against ``full_fp32``. Each run is its own process, so peak memory is
its own. Feature extraction is timed separately (``features_s``): the features stage does it once
per data set and encoder, and every later training run reuses it; ``train+features_s`` adds it back.

    python bench/training_cost.py --out bench/results/training_cost.json
    python bench/training_cost.py --datasets vqa_rad --vqa-rad-source ../shared/data/vqa_rad --families resnet_bert

Selection uses validation only; the test accuracy is reported, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Each strategy: (family config changes, train param changes).
STRATEGIES = {
    "full_fp32": (dict(image_training="full", text_training="full"), dict(precision="fp32")),
    "full_bf16": (dict(image_training="full", text_training="full"), dict(precision="bf16")),
    "partial": (dict(image_training="partial", text_training="partial"), dict(precision="fp32")),
    "lora_text": (dict(image_training="frozen", text_training="lora"), dict(precision="fp32")),
    # A head on cached features costs seconds per epoch, so it gets a longer, gentler schedule:
    # 30 epochs at lr 5e-4 had the best mean validation accuracy over easy-VQA and VQA-RAD among
    # {8, 30} epochs x {2e-3, 1e-3, 5e-4} (resnet_bert; see the README's Performance section).
    "frozen_cached": (dict(image_training="frozen", text_training="frozen", lr=5e-4),
                      dict(precision="fp32", max_epochs=30)),
}
REFERENCE = "full_fp32"


def prepare_data(dataset: str, *, image_size: int, resize: str, source: str | None, max_images: int | None,
                 work: Path, seed: int) -> Path:
    """Download (from the package or a local copy) and preprocess once per data set and image geometry."""
    from vqalab.config import from_mapping
    from vqalab.data.preprocess import preprocess
    from vqalab.data.registry import download, get_dataset
    from vqalab.io import atomic_path

    raw = work / f"{dataset}-raw-{max_images}"
    if not raw.exists():
        config = from_mapping(get_dataset(dataset).config_class, {"source": source} if source else {}, f"datasets.{dataset}")
        download(dataset, config, out=raw, downloads=work / "downloads", max_images_per_split=max_images)
    processed = work / f"{dataset}-{image_size}-{resize}-{max_images}"
    if not processed.exists():
        with atomic_path(processed, is_dir=True) as tmp:
            preprocess(raw, tmp, image_size=image_size, resize=resize, seed=seed, val_fraction=0.1, min_answer_count=1)
    return processed


def run_one(spec: dict) -> dict:
    """One training run (called in a child process): returns its figures."""
    from vqalab.config import TrainParams, from_mapping
    from vqalab.data.dataset import ProcessedData
    from vqalab.data.features import CachedFeatures, compute_features
    from vqalab.evaluation.metrics import accuracy
    from vqalab.evaluation.predict import predict_dataset
    from vqalab.models.registry import get_family
    from vqalab.training.device import resolve_device, seed_everything
    from vqalab.training.loop import fit

    family = get_family(spec["family"])
    config = from_mapping(family.config_class, spec["config"], f"{spec['family']}.tiny")
    train_params = from_mapping(TrainParams, spec["train"], "train")
    device = resolve_device(train_params.device)
    data = ProcessedData.load(spec["data"])
    seed_everything(spec["seed"])
    model = family.model_class.build(config, data.vocab.answers)
    start = time.perf_counter()
    questions = sorted({r.question for r in data.records})
    tensors, fingerprints = compute_features(model, data.images, questions, batch_size=256, device=device)
    features = CachedFeatures.from_tensors(tensors, fingerprints, questions)
    features_s = time.perf_counter() - start if fingerprints else 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = fit(model, data.split("train", features), data.split("val", features), params=train_params,
                 device=device, seed=spec["seed"])
    test = data.split("test", features)
    predictions = predict_dataset(model, test, batch_size=256, device=device)
    epochs = result.history
    return {
        "train_s": result.train_time_s,
        "features_s": features_s,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "val_curve": [(e["elapsed_s"], e["val_accuracy"]) for e in epochs],
        "train_samples_per_s": sum(e["train_samples_per_s"] for e in epochs) / len(epochs),
        "test_accuracy": accuracy([top[0][0] for top in predictions], [r.answer for r in test.records]),
        "n_train": len(data.split("train")), "n_test": len(test),
        "trainable_params": model.parameter_counts()["trainable_params"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
        **({"peak_gpu_mb": torch.cuda.max_memory_allocated(device) / 2**20} if device.type == "cuda" else {}),
    }


def run_child(spec: dict) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{spec['family']}/{spec['strategy']} on {spec['dataset']} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def time_to_target(curve: list, target: float) -> float | None:
    """Training wall time (validation included) until validation accuracy first reaches ``target``."""
    return next((elapsed for elapsed, val in curve if val >= target), None)


def add_ratios(rows: list[dict], margin: float) -> None:
    for row in rows:
        reference = next(r for r in rows if r["dataset"] == row["dataset"] and r["family"] == row["family"]
                         and r["strategy"] == REFERENCE)
        target = reference["best_val_accuracy"] - margin
        row["target_val_accuracy"] = target
        row["time_to_target_s"] = time_to_target(row["val_curve"], target)
        row["train+features_s"] = row["train_s"] + row["features_s"]
        row["speedup_train"] = reference["train_s"] / row["train_s"]
        row["speedup_train+features"] = reference["train+features_s"] / row["train+features_s"]
        row["samples_per_s_ratio"] = row["train_samples_per_s"] / reference["train_samples_per_s"]
        row["peak_rss_ratio"] = row["peak_rss_mb"] / reference["peak_rss_mb"]
        row["test_accuracy_delta_points"] = 100 * (row["test_accuracy"] - reference["test_accuracy"])
        ref_ttt, ttt = time_to_target(reference["val_curve"], target), row["time_to_target_s"]
        row["time_to_target_speedup"] = ref_ttt / ttt if ref_ttt and ttt else None


def table(rows: list[dict]) -> str:
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    lines = ["| data set | family | strategy | train s | +features s | samples/s | time to target s | peak RSS MB "
             "| test acc % | Δ acc pts | train speed-up | speed-up incl. features | time-to-target speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(" | ".join([
            f"| {r['dataset']}", r["family"], r["strategy"], fmt(r["train_s"], ".1f"), fmt(r["features_s"], ".1f"),
            fmt(r["train_samples_per_s"], ".0f"), fmt(r["time_to_target_s"], ".1f"), fmt(r["peak_rss_mb"], ".0f"),
            fmt(100 * r["test_accuracy"], ".2f"), fmt(r["test_accuracy_delta_points"], "+.2f"),
            f"{r['speedup_train']:.1f}x", f"{r['speedup_train+features']:.1f}x",
            "-" if r["time_to_target_speedup"] is None else f"{r['time_to_target_speedup']:.1f}x"]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--datasets", nargs="+", default=["easy_vqa", "vqa_rad"])
    parser.add_argument("--families", nargs="+", default=["resnet_bert", "pubmedclip"])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--vqa-rad-source", default=str(ROOT.parent / "shared/data/vqa_rad"),
                        help="local copy of VQA-RAD (official layout)")
    parser.add_argument("--max-images", type=int, nargs="+", default=[400, 0],
                        help="images per split kept, per data set in --datasets order (0: all): full fine-tuning "
                             "of every question on 2 cores bounds the easy-VQA size")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="override params.yaml train.max_epochs (a strategy's own setting still wins)")
    parser.add_argument("--target-margin", type=float, default=0.01,
                        help="target validation accuracy = the reference's best minus this")
    parser.add_argument("--work", type=Path, default=ROOT / "bench/.work", help="folder for the prepared data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/training_cost.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(json.loads(args.child))))
        return
    if REFERENCE not in args.strategies:
        parser.error(f"--strategies must include the reference {REFERENCE}: ratios are taken against it")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    train = {**params["train"], "device": "cpu" if not torch.cuda.is_available() else "auto"}
    if args.max_epochs:
        train["max_epochs"] = args.max_epochs
    rows = []
    bench_start = time.perf_counter()
    for dataset, max_images in zip(args.datasets, args.max_images + [0] * len(args.datasets)):
        for family in args.families:
            base = params[family]["tiny"]
            data = prepare_data(dataset, image_size=base["image_size"], resize=base["resize"],
                                source=args.vqa_rad_source if dataset == "vqa_rad" else None,
                                max_images=max_images or None, work=args.work, seed=params["seed"])
            for strategy in args.strategies:
                config_changes, train_changes = STRATEGIES[strategy]
                spec = {"dataset": dataset, "family": family, "strategy": strategy, "data": str(data),
                        "seed": params["seed"], "config": {**base, **config_changes},
                        "train": {**train, **train_changes}}
                print(f"{dataset} {family} {strategy} ...", file=sys.stderr, flush=True)
                figures = run_child(spec)
                rows.append({"dataset": dataset, "family": family, "strategy": strategy,
                             "max_images_per_split": max_images or None, **figures})
    add_ratios(rows, args.target_margin)
    print(table(rows))
    print(f"\nbench wall time {time.perf_counter() - bench_start:.0f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {train['device']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rows": rows, "train": train, "target_margin": args.target_margin}, indent=1))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
