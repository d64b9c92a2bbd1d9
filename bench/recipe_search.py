"""A recipe's hyper-parameters searched on validation only, over seeds, as experiments of the pipeline.

Queues one DVC experiment per setting and seed, each running the pipeline up to its train stage
only, so the test split is never scored (``dvc exp run --queue --name NAME -S model.lr=0.001,0.002
-S seed=0,1,2 train``); runs the queue; reads each experiment's kept epoch and its validation
accuracy (metrics/train/metrics.json) and its training time (its elapsed_s curve); and gives each
setting's mean and standard deviation over seeds (``vqalab compare``'s aggregation), best first. A
seed also draws the validation split.

An experiment that stops at train keeps its commit's metrics/eval.json, which is the baseline's:
read these experiments with this script (or --table), not with `vqalab compare`.

    python bench/recipe_search.py -S model.lr=0.0005,0.001,0.002
    python bench/recipe_search.py -S dataset=vqa_rad -S dataset.source=/data/vqa_rad \\
        -S model.dropout=0.1,0.3 -S train.weight_decay=0.01,0.05
    python bench/recipe_search.py --table recipe-20261205-203000      # an earlier search's table again
"""

from __future__ import annotations

import sys
from pathlib import Path

from vqalab.benchmark.common import write_results
from vqalab.benchmark.experiments import (TRAIN_SUMMARY_FILE, Experiment, alike, curve, finished, label, picked,
                                          run_sweep, setting_of, split_settings, sweep_parser)
from vqalab.config import flatten
from vqalab.report.compare import aggregate_seeds, is_setting, run_row

DEFAULTS = {"seed": "0,1,2"}
# The stages an experiment runs: train and what it depends on, never evaluate.
TARGETS = ("train",)


def require_settings_apart(plan: dict[str, dict]) -> None:
    """Stop before queueing a search in which two experiments differ only in how a run is started
    (``run.*``): ``vqalab compare``'s aggregation would count them as one run of one setting."""
    twins = alike(plan, lambda values: {key: value for key, value in flatten(values).items()
                                        if is_setting(key) or key == "seed"})
    if twins:
        raise SystemExit(f"{twins[1]} differs from {twins[0]} only in how a run is started (run.*), not in what it "
                         f"makes: a search varies what a run makes (and seeds: -S seed=0,1,2)")


def seed_rows(experiments: list[Experiment]) -> list[dict]:
    """One row per experiment, as ``vqalab compare`` reads a run, with its validation figures."""
    rows = []
    for experiment in experiments:
        summary, elapsed = experiment.metrics(TRAIN_SUMMARY_FILE), curve(experiment, "elapsed_s")
        rows.append(run_row(experiment.run, experiment.values, {
            "val_accuracy": summary["val_accuracy"], "best_epoch": summary["step"],
            "train_time_s": elapsed[max(elapsed)]}))
    return rows


def search_rows(experiments: list[Experiment]) -> tuple[list[dict], dict]:
    """Each setting's mean and standard deviation over seeds, with its runs, best first; and the
    settings every run shares."""
    done = finished(experiments)
    varied, shared = split_settings(done, [setting_of(e) for e in done])
    shown = [key for key in varied if key != "seed"]
    runs = {row["run"]: row for row in seed_rows(done)}
    values = {experiment.name: experiment.values for experiment in done}
    rows = [{"setting": label(picked(values[setting["runs"][0]], shown)), "seeds": setting["seeds"],
             "mean_val_accuracy": setting["val_accuracy"], "sd_val_accuracy": setting["val_accuracy_sd"],
             "mean_train_time_s": setting["train_time_s"],
             "runs": [{key: runs[name][key] for key in ("run", "rev", "seed", "val_accuracy", "best_epoch",
                                                       "train_time_s")} for name in setting["runs"]]}
            for setting in aggregate_seeds(list(runs.values()), figures=("val_accuracy", "train_time_s"))]
    return sorted(rows, key=lambda row: -row["mean_val_accuracy"]), shared


def table(rows: list[dict], *, shared: dict) -> str:
    lines = [f"Every run: {label(shared)}.", "",
             "| setting | validation accuracy, mean ± sd over seeds | per seed | best epochs | train s | experiments |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        runs = row["runs"]
        lines.append(f"| {row['setting']} | {100 * row['mean_val_accuracy']:.2f} ± "
                     f"{100 * row['sd_val_accuracy']:.2f}% (seeds {', '.join(map(str, row['seeds']))}) | "
                     f"{' / '.join(format(100 * r['val_accuracy'], '.2f') for r in runs)} | "
                     f"{' / '.join(str(r['best_epoch']) for r in runs)} | {row['mean_train_time_s']:.0f} | "
                     f"{', '.join(r['run'] for r in runs)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = sweep_parser(__doc__, defaults=DEFAULTS)
    parser.add_argument("--jobs", type=int, default=1, help="experiments run at a time (default 1)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here, and the table beside it (.md)")
    args = parser.parse_args(argv)
    rows, shared = search_rows(run_sweep(args, benchmark="recipe", defaults=DEFAULTS, targets=TARGETS, jobs=args.jobs,
                                 check=require_settings_apart))
    if not rows:
        raise SystemExit("no experiment of the search finished: `dvc queue logs NAME` shows why one failed")
    text = table(rows, shared=shared)
    print(text)
    print("\nThe test split was not scored.", file=sys.stderr)
    if args.out:
        write_results(args.out, {"benchmark": "recipe_search", "shared": shared, "rows": rows}, table=text)


if __name__ == "__main__":
    main()
