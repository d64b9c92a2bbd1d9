"""Training throughput epoch by epoch: does a default training slow down as it converges?

Trains the default pipeline's model (params.yaml as it is: easy-VQA, resnet_bert tiny on cached
features) with the pipeline's own steps, twice in one run, each in its own process: as the
project runs it (subnormal floats flushed to zero, ``vqalab.runtime.resolve_device``) and with
subnormals kept (IEEE arithmetic, as a process that never set the flag). For each it prints the
training samples/s and the process's resident memory after every epoch, and the ratio of the last
epoch's throughput to the first's. As the loss falls, gradients and Adam's moment estimates
underflow into subnormal numbers, which some x86 processors compute in microcode: there the kept
run slows down epoch after epoch and its ratio falls well below 1. Resident memory that grows
with the epochs would show another slowdown (something kept per epoch).

    python bench/epoch_throughput.py                      # the default data set, every epoch
    python bench/epoch_throughput.py --max-images 300     # a quicker check on a slice
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from vqalab.benchmark.runs import RunInputs
from vqalab.benchmark.timing import environment
from vqalab.pipeline.train import train_model
from vqalab.resolve import load_params
from vqalab.runtime import machine, resolve_device

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"flushed": True, "subnormals kept": False}


def run_one(*, flush: bool, max_images: int | None, work: Path) -> dict:
    """One default training (called in a child process); per-epoch samples/s and resident memory."""
    overrides = {"download": {"max_images_per_split": max_images}} if max_images else {}
    params = load_params(ROOT / "params.yaml", overrides)
    device = resolve_device(params.train.device)  # flushes subnormals, as every entry point does
    torch.set_flush_denormal(flush)
    inputs = RunInputs(work)
    data = inputs.data(params)
    epochs = []

    def record(epoch: int, metrics: dict) -> None:
        if "train_samples_per_s" in metrics:
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
            epochs.append({"epoch": epoch, "samples_per_s": metrics["train_samples_per_s"],
                           "val_accuracy": metrics["val_accuracy"], "peak_rss_mb": rss_mb})

    trained = train_model(params, data, inputs.features(params, device=device), inputs.blind(params), device=device,
                          on_epoch_end=record)
    return {"epochs": epochs, "train_time_s": trained.result.train_time_s,
            "best_val_accuracy": trained.result.best_val_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--max-images", type=int, help="keep the first N images of each split (default: all)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench/.work", help="folder for the prepared data")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(**json.loads(args.child), max_images=args.max_images, work=args.work)))
        return
    runs = {}
    for name, flush in VARIANTS.items():
        print(f"training, {name} ...", file=sys.stderr, flush=True)
        child = subprocess.run([sys.executable, __file__, "--child", json.dumps({"flush": flush}), "--work",
                                str(args.work), *(["--max-images", str(args.max_images)] if args.max_images else [])],
                               capture_output=True, text=True)
        if child.returncode != 0:
            raise SystemExit(f"the {name} run failed:\n{child.stderr[-3000:]}")
        runs[name] = json.loads(child.stdout.strip().splitlines()[-1])
    print("| run | " + " | ".join(f"epoch {e['epoch']}" for e in runs["flushed"]["epochs"])
          + " | last / first | train s | best val acc | peak RSS MB, first -> last epoch |")
    print("|---|" + "---|" * (len(runs["flushed"]["epochs"]) + 4))
    for name, run in runs.items():
        rates = [e["samples_per_s"] for e in run["epochs"]]
        run["last_over_first"] = rates[-1] / rates[0]
        print(f"| {name} | " + " | ".join(f"{r:,.0f}" for r in rates)
              + f" | {run['last_over_first']:.2f} | {run['train_time_s']:.1f} | {run['best_val_accuracy']:.5f} | "
              f"{run['epochs'][0]['peak_rss_mb']:,.0f} -> {run['epochs'][-1]['peak_rss_mb']:,.0f} |")
    ratio = runs["flushed"]["train_time_s"] / runs["subnormals kept"]["train_time_s"]
    print(f"\ntraining time, flushed / kept: {ratio:.2f}; {machine(torch.device('cpu'))['processor']}, "
          f"torch {torch.__version__}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=args.out.parent, delete=False, suffix=".tmp") as tmp:
            json.dump({"runs": runs, "environment": {**environment(torch.device("cpu")), **machine(torch.device("cpu"))},
                       "max_images_per_split": args.max_images}, tmp, indent=1)
        Path(tmp.name).replace(args.out)


if __name__ == "__main__":
    main()
