"""Training cost per family and strategy, measured side by side in one run on this machine.

For each data set and fusion family (tiny profile from params.yaml, with the data set's recipe),
trains with each strategy - a file of parameter overrides in bench/strategies/ (``--strategies``),
resolved by ``vqalab.resolve.load_params`` over the benchmark's own values:

- ``full_fp32``: every encoder fine-tuned, fp32 (the reference);
- ``full_bf16``: the same under bf16 autocast;
- ``partial``: the last ``trainable_blocks`` blocks of each encoder fine-tuned;
- ``lora_text``: image encoder frozen (cached), LoRA on the text encoder;
- ``frozen_cached``: both encoders frozen; only fusion and head train, on cached features;

and reports training samples/s, time to reach the target validation accuracy (the reference's best
validation accuracy minus ``--target-margin``), peak memory (the run's own process), test accuracy,
and each strategy's ratios against ``full_fp32``. Every run is the pipeline's: its data prepared,
its features and blind baseline made, its model trained and evaluated by ``vqalab.pipeline``'s
functions, each run in its own process, so peak memory is its own. Feature extraction is timed
separately (``features_s``): the features stage does it once per data set and encoder, and every
later training run reuses it; ``train+features_s`` adds it back.

    python bench/training_cost.py --datasets easy_vqa --out bench/results/training_cost.json
    python bench/training_cost.py --datasets vqa_rad --vqa-rad-source /path/to/vqa_rad --families resnet_bert

Selection uses validation only; the test accuracy is reported, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vqalab.benchmark.runs import RunInputs
from vqalab.benchmark.strategies import load_strategies, strategy_overrides
from vqalab.models.checkpoint import save_checkpoint
from vqalab.pipeline.evaluate import evaluate_model
from vqalab.pipeline.train import train_model
from vqalab.resolve import load_params
from vqalab.runtime import resolve_device

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = load_strategies(ROOT / "bench/strategies")
REFERENCE = "full_fp32"
PROFILE = "tiny"


def run_overrides(strategy: str, *, dataset: str, family: str, train: dict, data: dict) -> dict:
    """The parameter values of one run: the data set (``data``: its download settings and source)
    and family chosen, ``train`` (the bench's device and epochs), then the strategy's values, which win."""
    return strategy_overrides(STRATEGIES[strategy], model=family, profile=PROFILE,
                              base={"dataset": dataset, **data, "train": train})


def data_overrides(dataset: str, *, max_images: int | None, source: str | None) -> dict:
    """The download settings of ``dataset``: the first ``max_images`` images of each split, from ``source``."""
    return {"download": {"max_images_per_split": max_images},
            **({"datasets": {dataset: {"source": source}}} if source else {})}


def run_one(spec: dict) -> dict:
    """One run (in a child process): the features, blind, train and evaluate steps of the pipeline."""
    params = load_params(ROOT / "params.yaml", spec["overrides"])
    device = resolve_device(params.train.device)
    inputs = RunInputs(Path(spec["work"]))
    data = inputs.data(params)
    start = time.perf_counter()
    features = inputs.features(params, device=device)
    features_s = time.perf_counter() - start if features else 0.0
    blind = inputs.blind(params)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trained = train_model(params, data, features, blind, device=device, where=inputs.processed(params))
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(trained.model, Path(tmp) / "model", info=trained.info)
        evaluation = evaluate_model(params, Path(tmp) / "model", data, features, blind, device=device)
    result = trained.result
    return {
        "train_s": result.train_time_s,
        "features_s": features_s,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "val_curve": [(e["elapsed_s"], e["val_accuracy"]) for e in result.history],
        "train_samples_per_s": trained.info["train_samples_per_s"],
        "test_accuracy": evaluation.quality["accuracy"],
        "n_train": trained.info["n_train"], "n_test": evaluation.details["n"],
        "trainable_params": trained.info["trainable_params"],
        "peak_rss_mb": evaluation.cost["peak_rss_mb"],
        **({"peak_gpu_mb": peak_gpu} if peak_gpu is not None else {}),
    }


def run_child(spec: dict, *, label: str) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{completed.stderr[-3000:]}")
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--datasets", nargs="+", default=["easy_vqa", "vqa_rad"])
    parser.add_argument("--families", nargs="+", default=["resnet_bert", "pubmedclip"])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES),
                        help="strategy files of bench/strategies/ (default: all)")
    parser.add_argument("--vqa-rad-source", help="a local copy of VQA-RAD (official layout): needed when "
                                                 "vqa_rad is among --datasets")
    parser.add_argument("--max-images", type=int, nargs="+", default=[400, 0],
                        help="images per split kept, per data set in --datasets order (0: all): full fine-tuning "
                             "of every question on 2 cores bounds the easy-VQA size")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="override params.yaml train.max_epochs (a strategy's own setting still wins)")
    parser.add_argument("--target-margin", type=float, default=0.01,
                        help="target validation accuracy = the reference's best minus this")
    parser.add_argument("--work", type=Path, default=ROOT / "bench/.work",
                        help="folder for the prepared data and blind baselines")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/training_cost.json")
    args = parser.parse_args(argv)
    if args.child:
        return args
    if REFERENCE not in args.strategies:
        parser.error(f"--strategies must include the reference {REFERENCE}: ratios are taken against it")
    if "vqa_rad" in args.datasets and not args.vqa_rad_source:
        parser.error("--vqa-rad-source is required when vqa_rad is benchmarked: give a local copy of VQA-RAD "
                     "(its official layout), or leave vqa_rad out of --datasets")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_one(json.loads(args.child))))
        return
    train = {"device": "cpu" if not torch.cuda.is_available() else "auto"}
    if args.max_epochs:
        train["max_epochs"] = args.max_epochs
    rows = []
    bench_start = time.perf_counter()
    for dataset, max_images in zip(args.datasets, args.max_images + [0] * len(args.datasets)):
        data = data_overrides(dataset, max_images=max_images or None,
                              source=args.vqa_rad_source if dataset == "vqa_rad" else None)
        for family in args.families:
            runs = {strategy: run_overrides(strategy, dataset=dataset, family=family, train=train, data=data)
                    for strategy in args.strategies}
            # Every strategy's parameters are checked, and the data prepared, before the first run starts.
            checked = {strategy: load_params(ROOT / "params.yaml", overrides) for strategy, overrides in runs.items()}
            RunInputs(args.work).processed(checked[REFERENCE])
            for strategy, overrides in runs.items():
                label = f"{dataset} {family} {strategy}"
                print(f"{label} ...", file=sys.stderr, flush=True)
                figures = run_child({"overrides": overrides, "work": str(args.work)}, label=label)
                rows.append({"dataset": dataset, "family": family, "strategy": strategy,
                             "max_images_per_split": max_images or None, **figures})
    add_ratios(rows, args.target_margin)
    print(table(rows))
    print(f"\nbench wall time {time.perf_counter() - bench_start:.0f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {train['device']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rows": rows, "strategies": {s: STRATEGIES[s].values() for s in args.strategies},
                               "train_overrides": train, "target_margin": args.target_margin}, indent=1))
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
