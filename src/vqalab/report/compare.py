"""``vqalab-compare``: the study's table across experiments, from ``dvc exp show --json``.

Runs with the same parameters but for ``seed`` are one setting: its row gives the mean and the
standard deviation over the seeds (the latest run of each seed), so a headline figure on a small
test set carries its spread. Rows of one data set and model made with other parameters say which
(``setting``: e.g. ``recipes.easy_vqa.train.max_epochs=1``), so a smoke run never passes for a full one. Rows show test accuracy beside the blind (question-only) baseline and
the image gain, SBERT similarity, training time, closed/open accuracy and WUPS where the runs have
them; and a plot of accuracy against training time.

    dvc exp run --queue -S seed=0,1,2 && dvc queue start   # three seeds of one setting
    vqalab-compare                               # experiments of HEAD and the workspace
    vqalab-compare --all-commits --out-md metrics/compare.md --out-png plots/compare.png
    dvc exp show --json > exps.json && vqalab-compare --json exps.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from vqalab.config import flatten
from vqalab.io import atomic_path
from vqalab.report.report import format_duration, plt

EVAL_METRICS = "metrics/eval.json"
PARAMS_FILE = "params.yaml"
# Figures averaged over seeds, in table order; a column is shown when any row has it.
AVERAGED = ("accuracy", "blind_accuracy", "image_gain", "accuracy_closed", "accuracy_open", "sbert_similarity",
            "wups_09", "wups_00", "train_time_s")


def experiment_rows(exp_show: list[dict]) -> list[dict]:
    """Flatten ``dvc exp show --json`` into one dict per run that has evaluation metrics: the
    metrics, plus ``run``, ``timestamp`` and ``params`` (params.yaml as the run saw it)."""
    runs = []
    for commit in exp_show:
        runs.append(commit)
        for experiment in commit.get("experiments") or []:
            # A queued, running or failed experiment shows the metrics of the commit it started from:
            # only finished ones count (an experiment run outside the queue has no executor).
            if ((experiment.get("executor") or {}).get("state") or "success") != "success":
                continue
            runs.extend(experiment.get("revs") or [])
    rows = []
    for run in runs:
        data = run.get("data") or {}
        metrics = ((data.get("metrics") or {}).get(EVAL_METRICS) or {}).get("data")
        if not metrics or "accuracy" not in metrics:
            continue
        params = ((data.get("params") or {}).get(PARAMS_FILE) or {}).get("data") or {}
        rows.append({"run": run.get("name") or data.get("rev") or run.get("rev"),
                     "timestamp": data.get("timestamp") or "", "params": params, **metrics})
    return rows


def setting_key(row: dict) -> tuple:
    """Runs that differ only in their seed share a key."""
    params = {k: v for k, v in row["params"].items() if k != "seed"}
    return (row["dataset"], row.get("data_setting", ""), row["model"], row["profile"],
            json.dumps(params, sort_keys=True, default=str))


def aggregate_seeds(rows: list[dict]) -> list[dict]:
    """One row per setting: the latest run of each seed (runs without a timestamp - the workspace -
    count as the latest), averaged; ``<figure>_sd`` is the standard deviation over seeds (0 for one)."""
    latest: dict[tuple, dict] = {}
    for row in rows:
        key = (setting_key(row), row.get("seed"))
        if key not in latest or (row["timestamp"] or "9999") >= (latest[key]["timestamp"] or "9999"):
            latest[key] = row
    settings: dict[tuple, list[dict]] = {}
    for (setting, _), row in latest.items():
        settings.setdefault(setting, []).append(row)
    table = []
    for runs in settings.values():
        runs.sort(key=lambda r: (r.get("seed") is None, r.get("seed")))
        first = runs[0]
        row = {"dataset": first["dataset"], "data_setting": first.get("data_setting", ""), "model": first["model"],
               "profile": first["profile"], "seeds": [r.get("seed") for r in runs], "runs": [r["run"] for r in runs],
               "params": {k: v for k, v in flatten(first["params"]).items() if k != "seed"}}
        for name in AVERAGED:
            values = [r[name] for r in runs if name in r]
            if len(values) == len(runs):
                row[name] = statistics.fmean(values)
                row[f"{name}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        table.append(row)
    mark_differences(table)
    return sorted(table, key=lambda r: (r["dataset"], r["data_setting"], r["model"], r["profile"], r["runs"]))


def mark_differences(rows: list[dict]) -> None:
    """Rows of one data set, model and profile made with other parameters (a smoke run's epochs, a
    learning rate) get ``differs``: each parameter that is not the same across those rows, with its
    value in this row, so no row can pass for another."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["data_setting"], row["model"], row["profile"]), []).append(row)
    for group in groups.values():
        keys = sorted({k for row in group for k in row["params"]})
        varying = [k for k in keys if len({json.dumps(row["params"].get(k), default=str) for row in group}) > 1]
        for row in group:
            row["differs"] = ", ".join(f"{k}={row['params'].get(k)}" for k in varying)


def render_table(rows: list[dict]) -> str:
    def spread(row, key, scale=100.0, unit="%"):
        if key not in row:
            return "-"
        if len(row["seeds"]) == 1:
            return f"{scale * row[key]:.2f}{unit}"
        return f"{scale * row[key]:.2f} ± {scale * row[f'{key}_sd']:.2f}{unit}"

    def gain(row):
        if "image_gain" not in row:
            return "-"
        sd = f" ± {100 * row['image_gain_sd']:.2f}" if len(row["seeds"]) > 1 else ""
        return f"{100 * row['image_gain']:+.2f}{sd} pts"

    lines = ["| data set | model | profile | setting | seeds | test accuracy | blind baseline | image gain | closed | open | "
             "SBERT similarity | WUPS@0.9 | WUPS@0.0 | training time | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        data = f"{r['dataset']} ({r['data_setting']})" if r["data_setting"] else r["dataset"]
        seeds = ", ".join(str(s) for s in r["seeds"])
        lines.append(
            f"| {data} | {r['model']} | {r['profile']} | {r.get('differs') or '-'} | {seeds} | {spread(r, 'accuracy')} | "
            f"{spread(r, 'blind_accuracy')} | {gain(r)} | {spread(r, 'accuracy_closed')} | "
            f"{spread(r, 'accuracy_open')} | {spread(r, 'sbert_similarity')} | {spread(r, 'wups_09', unit='')} | "
            f"{spread(r, 'wups_00', unit='')} | {format_duration(r['train_time_s'])} | {', '.join(r['runs'])} |")
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_time(rows: list[dict], out_png: Path) -> None:
    """Mean test accuracy against mean training time per setting; bars: the spread over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for dataset in sorted({r["dataset"] for r in rows}):
        picked = [r for r in rows if r["dataset"] == dataset]
        ax.errorbar([r["train_time_s"] / 60 for r in picked], [100 * r["accuracy"] for r in picked],
                    yerr=[100 * r["accuracy_sd"] for r in picked], fmt="o", capsize=3, label=dataset)
        for r in picked:
            ax.annotate(r["model"], (r["train_time_s"] / 60, 100 * r["accuracy"]), fontsize=8,
                        xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(title="data set")
    fig.tight_layout()
    fig.savefig(out_png, format="png", dpi=100)
    plt.close(fig)


def read_exp_show(json_path: Path | None, all_commits: bool) -> list[dict]:
    if json_path is not None:
        return json.loads(json_path.read_text(encoding="utf-8"))
    command = ["dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (run it in the project): {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


def main(argv: list[str] | None = None, *, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="read this `dvc exp show --json` output instead of running it")
    parser.add_argument("--all-commits", action="store_true", help="include the experiments of every commit")
    parser.add_argument("--out-md", type=Path, help="also write the table here")
    parser.add_argument("--out-png", type=Path, help="write the accuracy vs training time plot here")
    args = parser.parse_args(argv)
    rows = aggregate_seeds(experiment_rows(read_exp_show(args.json, args.all_commits)))
    if not rows:
        raise SystemExit("no run with metrics/eval.json found: run `dvc repro` or `dvc exp run` first")
    table = render_table(rows)
    sys.stdout.write(table)
    if args.out_md:
        with atomic_path(args.out_md) as tmp:
            tmp.write_text(table, encoding="utf-8")
    if args.out_png:
        with atomic_path(args.out_png) as tmp:
            plot_accuracy_vs_time(rows, tmp)


if __name__ == "__main__":
    main()
