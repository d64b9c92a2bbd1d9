"""Training cost of each strategy (conf/strategy/), as experiments of the pipeline, against full fine-tuning.

Queues one DVC experiment per strategy and per value of any other sweep (``dvc exp run --queue
--name NAME -S strategy=full,partial,lora,frozen ...``), runs the queue one experiment at a time
(``dvc exp run --run-all --jobs 1``), then reads each experiment back (``dvc exp show``):

- training samples/s, training time and peak memory (metrics/cost.json: the train and evaluate
  stages' processes), trainable parameters, and test accuracy (metrics/eval.json);
- from its per-epoch curves (metrics/train/plots/metrics/ in its commit): its last epoch's samples/s
  over its first's (below 1: a training that slows down as it converges), and its time to the
  target - the reference's best validation accuracy less --target-margin - counted from the start
  of training, validation included (epoch 0, the untrained model where it is a baseline, at 0 s);
- each figure's ratio to the reference run (--reference, default strategy=full) that agrees with it
  on every other setting.

The features stage's time (frozen encoders run once per data set and setting) is not training time
and is not recorded by the pipeline. A stage DVC restores from its run-cache (the same parameters and
code run before) is not measured again: --force runs every stage.

    python bench/training_cost.py                                     # resnet_bert, a slice of easy-VQA
    python bench/training_cost.py -S model=resnet_bert,pubmedclip -S train.precision=bf16
    python bench/training_cost.py -S dataset=vqa_rad -S dataset.source=/data/vqa_rad \\
        -S download.max_images_per_split=null
    python bench/training_cost.py --table cost-20261205-203000        # an earlier run's table again
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from vqalab.benchmark.common import write_results
from vqalab.benchmark.experiments import (TRAIN_SUMMARY_FILE, Experiment, curve, finished, label, picked, run_sweep,
                                          setting_of, split_settings, sweep_parser, value_of)
from vqalab.report.compare import COST_FILE, QUALITY_FILE

DEFAULTS = {
    "strategy": "full,partial,lora,frozen",
    # Full fine-tuning on 2 CPU cores trained 7 questions/s on a busy machine (load 5) and ~90 on an
    # idle one: all of easy-VQA (38,575 training questions) would take hours, so the default is a
    # slice - its first 100 images per split, about 860 training questions - and 5 epochs, which
    # kept the four strategies within about 20 minutes on the busy machine.
    "download.max_images_per_split": "100",
    "train.max_epochs": "5",
}


def parse_reference(texts: list[str]) -> dict:
    """``KEY=VALUE`` pairs (values read as YAML: ``seed=0`` is a number) as {key: value}."""
    pairs = [text.partition("=") for text in texts]
    malformed = [text for text, (key, sep, value) in zip(texts, pairs) if not (key and sep and value)]
    if malformed:
        raise SystemExit(f"--reference wants KEY=VALUE (e.g. strategy=full), got {malformed}")
    return {key: yaml.safe_load(value) for key, _, value in pairs}


def is_reference(values: dict, reference: dict) -> bool:
    return all(value_of(values, key) == value for key, value in reference.items())


def require_reference(plan: dict[str, dict], reference: dict) -> None:
    """Stop before queueing a sweep that has no reference run to take ratios against."""
    if not any(is_reference(values, reference) for values in plan.values()):
        wanted = " ".join(f"{key}={value}" for key, value in reference.items())
        raise SystemExit(f"no experiment of the sweep has {wanted}, the reference the ratios are taken against: "
                         f"add it to the sweep (-S) or choose another --reference")


def time_to_target(val_accuracy: dict[int, float], elapsed_s: dict[int, float], target: float) -> float | None:
    """Seconds from the start of training until validation accuracy first reached ``target``."""
    for epoch in sorted(val_accuracy):
        if val_accuracy[epoch] >= target:
            return elapsed_s[epoch] if epoch else 0.0  # epoch 0: the untrained model, validated before training
    return None


def run_figures(experiment: Experiment) -> dict:
    """One experiment's figures, as its stages recorded them."""
    cost, quality, kept = (experiment.metrics(path) for path in (COST_FILE, QUALITY_FILE, TRAIN_SUMMARY_FILE))
    rates = curve(experiment, "train_samples_per_s")
    epochs = sorted(rates)
    figures = {
        "train_time_s": cost["train_time_s"], "train_samples_per_s": cost["train_samples_per_s"],
        "samples_per_s_last_over_first": rates[epochs[-1]] / rates[epochs[0]], "epochs": len(epochs),
        "best_epoch": kept["step"], "best_val_accuracy": kept["val_accuracy"],
        "peak_rss_mb": cost["peak_rss_mb"], "trainable_params": cost["trainable_params"],
        "test_accuracy": quality["accuracy"], "processor": cost["processor"], "torch": cost["torch"],
    }
    if "peak_gpu_mb" in cost:
        figures |= {"peak_gpu_mb": cost["peak_gpu_mb"], "gpu": cost.get("gpu")}
    return figures


def reference_of(experiment: Experiment, candidates: list[Experiment], settings: dict[str, dict],
                 reference: dict) -> Experiment | None:
    """The run among ``candidates`` that has the ``reference`` values and agrees with ``experiment``
    on every other group choice and -S value (``settings``: ``setting_of`` by name)."""
    for candidate in candidates:
        keys = {**settings[experiment.name], **settings[candidate.name]}
        others = [key for key in keys if key not in reference]
        if is_reference(candidate.values, reference) and all(
                value_of(candidate.values, key) == value_of(experiment.values, key) for key in others):
            return candidate
    return None


def cost_rows(experiments: list[Experiment], *, reference: dict, target_margin: float) -> tuple[list[dict], dict]:
    """One row per finished experiment, with its ratios to the reference run of its other settings;
    and the settings every run shares."""
    done = finished(experiments)
    settings = {e.name: setting_of(e) for e in done}
    varied, shared = split_settings(done, list(settings.values()))
    shown = [key for key in varied if key not in ("dataset", "model")]  # the table's own columns
    figures = {e.name: run_figures(e) for e in done}
    rows = []
    for experiment in done:
        base = reference_of(experiment, done, settings, reference)
        row = {"experiment": experiment.name, "rev": experiment.rev, "ran": experiment.run["data"]["timestamp"],
               "dataset": value_of(experiment.values, "dataset"), "model": value_of(experiment.values, "model"),
               "setting": label(picked(experiment.values, shown)), "setting_values": settings[experiment.name],
               "reference": base.name if base else None, **figures[experiment.name]}
        if base is None:
            print(f"{experiment.name}: no run with {reference} and its other settings: no ratios", file=sys.stderr)
        else:
            add_ratios(row, figures[base.name], experiment, base, target_margin)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["dataset"], r["model"])), shared  # stable: the sweep's order within


def add_ratios(row: dict, base: dict, experiment: Experiment, reference: Experiment, margin: float) -> None:
    target = base["best_val_accuracy"] - margin
    ours = time_to_target(curve(experiment, "val_accuracy"), curve(experiment, "elapsed_s"), target)
    theirs = time_to_target(curve(reference, "val_accuracy"), curve(reference, "elapsed_s"), target)
    row |= {"target_val_accuracy": target, "time_to_target_s": ours,
            "time_to_target_speedup": theirs / ours if ours and theirs else None,
            "train_speedup": base["train_time_s"] / row["train_time_s"],
            "samples_per_s_ratio": row["train_samples_per_s"] / base["train_samples_per_s"],
            "peak_rss_ratio": row["peak_rss_mb"] / base["peak_rss_mb"],
            "test_accuracy_delta_points": 100 * (row["test_accuracy"] - base["test_accuracy"])}


def table(rows: list[dict], *, shared: dict, reference: dict) -> str:
    def fmt(value, spec, suffix=""):
        return "-" if value is None else f"{format(value, spec)}{suffix}"

    versus = " ".join(f"{key}={value}" for key, value in reference.items())
    finished_at = sorted(r["ran"] for r in rows)
    lines = [f"Every run: {label(shared)}; the runs finished {finished_at[0]} to {finished_at[-1]}.", "",
             f"| data set | model | setting | train s | samples/s | last/first epoch samples/s | time to target s "
             f"| peak RSS MB | trainable params | test acc % | Δ acc pts vs {versus} | train speed-up "
             f"| time-to-target speed-up | RSS ratio | experiment |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(" | ".join([
            f"| {r['dataset']}", r["model"], r["setting"], fmt(r["train_time_s"], ".1f"),
            fmt(r["train_samples_per_s"], ",.0f"), fmt(r["samples_per_s_last_over_first"], ".2f"),
            fmt(r.get("time_to_target_s"), ".1f"), fmt(r["peak_rss_mb"], ",.0f"), fmt(r["trainable_params"], ","),
            fmt(100 * r["test_accuracy"], ".2f"), fmt(r.get("test_accuracy_delta_points"), "+.2f"),
            fmt(r.get("train_speedup"), ".1f", "x"), fmt(r.get("time_to_target_speedup"), ".1f", "x"),
            fmt(r.get("peak_rss_ratio"), ".2f"), r["experiment"]]) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = sweep_parser(__doc__, defaults=DEFAULTS)
    parser.add_argument("--reference", action="append", metavar="KEY=VALUE",
                        help="the runs the ratios are taken against (repeatable; default strategy=full)")
    parser.add_argument("--target-margin", type=float, default=0.01,
                        help="target validation accuracy: the reference's best less this (default 0.01)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/training_cost.json"),
                        help="the rows as JSON; the table beside it (.md)")
    args = parser.parse_args(argv)
    reference = parse_reference(args.reference or ["strategy=full"])
    experiments = run_sweep(args, benchmark="cost", defaults=DEFAULTS,
                            check=lambda plan: require_reference(plan, reference))
    rows, shared = cost_rows(experiments, reference=reference, target_margin=args.target_margin)
    if not rows:
        raise SystemExit("no experiment of the sweep finished: `dvc queue logs NAME` shows why one failed")
    text = table(rows, shared=shared, reference=reference)
    print(text)
    write_results(args.out, {"benchmark": "training_cost", "shared": shared, "reference": reference,
                             "target_margin": args.target_margin, "rows": rows}, table=text)


if __name__ == "__main__":
    main()
