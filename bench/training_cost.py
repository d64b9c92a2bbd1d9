"""Training cost per family and strategy, measured side by side in one run on this machine.

For each data set and fusion family (tiny profile from params.yaml, with the data set's recipe),
trains with each strategy - a set of parameter overrides (``STRATEGIES``) loaded by
``vqalab.params.load_params`` and built by ``vqalab.harness.build_model``:

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

ROOT = Path(__file__).resolve().parents[1]
# Each strategy is a parameter override over params.yaml (after the data set's recipe):
# (the family's tiny-profile section, the train section). A strategy that fine-tunes the text
# encoder turns question_prior off: the prior is fitted on a frozen encoder's features.
STRATEGIES = {
    "full_fp32": (dict(image_training="full", text_training="full", question_prior=False), dict(precision="fp32")),
    "full_bf16": (dict(image_training="full", text_training="full", question_prior=False), dict(precision="bf16")),
    "partial": (dict(image_training="partial", text_training="partial", question_prior=False), dict(precision="fp32")),
    "lora_text": (dict(image_training="frozen", text_training="lora", question_prior=False), dict(precision="fp32")),
    # A head on cached features costs seconds per epoch, so it gets a longer, gentler schedule:
    # 30 epochs at lr 5e-4 had the best mean validation accuracy over easy-VQA and VQA-RAD among
    # {8, 30} epochs x {2e-3, 1e-3, 5e-4} (resnet_bert; see the README's Performance section).
    "frozen_cached": (dict(image_training="frozen", text_training="frozen", lr=5e-4),
                      dict(precision="fp32", max_epochs=30)),
}
REFERENCE = "full_fp32"
PROFILE = "tiny"


def strategy_overrides(strategy: str, *, dataset: str, family: str, train: dict) -> dict:
    """The parameter values of one run: the data set and family chosen, ``train`` (the bench's
    device and epoch settings), then the strategy's own values, which win."""
    family_changes, train_changes = STRATEGIES[strategy]
    return {"dataset": dataset, "model": family, "profile": PROFILE, family: {PROFILE: dict(family_changes)},
            "train": {**train, **train_changes}}


def prepare_data(dataset: str, *, params, source: str | None, max_images: int | None, work: Path,
                 options: dict | None = None) -> Path:
    """Download (from the package or a local copy) and preprocess once per data set (with its
    ``options``, such as VQA-RAD's variant), image geometry and seed (the seed draws validation)."""
    from vqalab.config import from_mapping
    from vqalab.data.preprocess import preprocess
    from vqalab.data.registry import download, get_dataset
    from vqalab.io import atomic_path

    options = dict(options or {})
    name = "-".join([dataset, *(f"{k}={v}" for k, v in sorted(options.items()))])
    raw = work / f"{name}-raw-{max_images}"
    if not raw.exists():
        config = from_mapping(get_dataset(dataset).config_class, {**options, **({"source": source} if source else {})},
                              f"datasets.{dataset}")
        download(dataset, config, out=raw, downloads=work / "downloads", max_images_per_split=max_images)
    image_size, resize = params.family.image_size, params.family.resize
    processed = work / f"{name}-{image_size}-{resize}-{max_images}-seed{params.seed}"
    if not processed.exists():
        with atomic_path(processed, is_dir=True) as tmp:
            preprocess(raw, tmp, image_size=image_size, resize=resize, seed=params.seed,
                       val_fraction=params.preprocess.val_fraction, val_split=params.preprocess.val_split,
                       min_answer_count=params.preprocess.min_answer_count)
    return processed


def run_one(spec: dict) -> dict:
    """One training run (called in a child process): the train stage's steps (harness.build_model,
    prepare_for_training, fit, save_checkpoint) and the evaluate stage's (harness.evaluate_checkpoint)."""
    import tempfile

    from vqalab.data.dataset import ProcessedData
    from vqalab.data.features import CachedFeatures, compute_features
    from vqalab.harness import build_model, evaluate_checkpoint
    from vqalab.models.checkpoint import save_checkpoint
    from vqalab.params import load_params
    from vqalab.runtime import resolve_device
    from vqalab.training.loop import fit

    params = load_params(ROOT / "params.yaml", spec["overrides"])
    device = resolve_device(params.train.device)
    data = ProcessedData.load(spec["data"])
    model = build_model(params, data, where=spec["data"])
    start = time.perf_counter()
    questions = sorted({r.question for r in data.records})
    tensors, fingerprints = compute_features(model, data.images, questions, batch_size=params.evaluate.batch_size,
                                             device=device)
    features = CachedFeatures.from_tensors(tensors, fingerprints, questions)
    features_s = time.perf_counter() - start if fingerprints else 0.0
    train_set, val_set = data.split("train", features), data.split("val", features)
    model.prepare_for_training(train_set, val_set)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result = fit(model, train_set, val_set, params=params.train, device=device, seed=params.seed)
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(model, Path(tmp) / "model", info={"dataset": params.dataset, "profile": params.profile,
                                                          "seed": params.seed})
        evaluation = evaluate_checkpoint(Path(tmp) / "model", data, features, device=device,
                                         batch_size=params.evaluate.batch_size, sbert_model=params.sbert_model)
    epochs = result.history
    return {
        "train_s": result.train_time_s,
        "features_s": features_s,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "val_curve": [(e["elapsed_s"], e["val_accuracy"]) for e in epochs],
        "train_samples_per_s": sum(e["train_samples_per_s"] for e in epochs) / len(epochs),
        "test_accuracy": evaluation.modes[evaluation.primary]["accuracy"],
        "n_train": len(train_set), "n_test": len(evaluation.test),
        "trainable_params": model.parameter_counts()["trainable_params"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
        **({"peak_gpu_mb": peak_gpu} if peak_gpu is not None else {}),
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
    from vqalab.params import load_params

    train = {"device": "cpu" if not torch.cuda.is_available() else "auto"}
    if args.max_epochs:
        train["max_epochs"] = args.max_epochs
    rows = []
    bench_start = time.perf_counter()
    for dataset, max_images in zip(args.datasets, args.max_images + [0] * len(args.datasets)):
        for family in args.families:
            runs = {strategy: strategy_overrides(strategy, dataset=dataset, family=family, train=train)
                    for strategy in args.strategies}
            # Every strategy's parameters are checked before the first run starts.
            checked = {strategy: load_params(ROOT / "params.yaml", overrides) for strategy, overrides in runs.items()}
            data = prepare_data(dataset, params=checked[REFERENCE], max_images=max_images or None, work=args.work,
                                source=args.vqa_rad_source if dataset == "vqa_rad" else None)
            for strategy, overrides in runs.items():
                print(f"{dataset} {family} {strategy} ...", file=sys.stderr, flush=True)
                figures = run_child({"dataset": dataset, "family": family, "strategy": strategy, "data": str(data),
                                     "overrides": overrides})
                rows.append({"dataset": dataset, "family": family, "strategy": strategy,
                             "max_images_per_split": max_images or None, **figures})
    add_ratios(rows, args.target_margin)
    print(table(rows))
    print(f"\nbench wall time {time.perf_counter() - bench_start:.0f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {train['device']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rows": rows, "strategies": {k: list(v) for k, v in STRATEGIES.items()},
                               "train_overrides": train, "target_margin": args.target_margin}, indent=1))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
