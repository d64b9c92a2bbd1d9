"""``vqalab-compare``: the study's table across experiments, from ``dvc exp show --json``.

One row per data set, model and profile - the most recent run of each (experiments, the
committed baseline and the workspace alike) - with test accuracy, SBERT similarity and training
time, plus closed/open accuracy and WUPS where the run has them; and a plot of accuracy against
training time.

    vqalab-compare                               # experiments of HEAD and the workspace
    vqalab-compare --all-commits --out-md metrics/compare.md --out-png plots/compare.png
    dvc exp show --json > exps.json && vqalab-compare --json exps.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from vqalab.io import atomic_path
from vqalab.report.report import format_duration, pct, plt

EVAL_METRICS = "metrics/eval.json"


def experiment_rows(exp_show: list[dict]) -> list[dict]:
    """Flatten ``dvc exp show --json`` into one dict per run that has evaluation metrics."""
    runs = []
    for commit in exp_show:
        runs.append(commit)
        for experiment in commit.get("experiments") or []:
            runs.extend(experiment.get("revs") or [])
    rows = []
    for run in runs:
        data = run.get("data") or {}
        metrics = ((data.get("metrics") or {}).get(EVAL_METRICS) or {}).get("data")
        if not metrics or "accuracy" not in metrics:
            continue
        rows.append({"run": run.get("name") or data.get("rev") or run.get("rev"),
                     "timestamp": data.get("timestamp") or "", **metrics})
    return rows


def latest_per_setting(rows: list[dict]) -> list[dict]:
    """The most recent row for each (dataset, model, profile); runs without a timestamp (the
    workspace) count as the most recent."""
    best: dict[tuple, dict] = {}
    for row in rows:
        key = (row["dataset"], row["model"], row["profile"])
        if key not in best or (row["timestamp"] or "9999") >= (best[key]["timestamp"] or "9999"):
            best[key] = row
    return sorted(best.values(), key=lambda r: (r["dataset"], r["model"], r["profile"]))


def render_table(rows: list[dict]) -> str:
    def opt(row, key, fmt):
        return fmt(row[key]) if key in row else "-"

    lines = ["| data set | model | profile | test accuracy | SBERT similarity | training time | closed | open | "
             "WUPS@0.9 | WUPS@0.0 | run |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['profile']} | {pct(r['accuracy'])} | {pct(r['sbert_similarity'])} | "
            f"{format_duration(r['train_time_s'])} | {opt(r, 'accuracy_closed', pct)} | {opt(r, 'accuracy_open', pct)} | "
            f"{opt(r, 'wups_09', lambda v: f'{100 * v:.2f}')} | {opt(r, 'wups_00', lambda v: f'{100 * v:.2f}')} | {r['run']} |")
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_time(rows: list[dict], out_png: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for dataset in sorted({r["dataset"] for r in rows}):
        picked = [r for r in rows if r["dataset"] == dataset]
        ax.scatter([r["train_time_s"] / 60 for r in picked], [100 * r["accuracy"] for r in picked], label=dataset)
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
    rows = latest_per_setting(experiment_rows(read_exp_show(args.json, args.all_commits)))
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
