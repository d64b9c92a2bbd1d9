"""``vqalab compare``: the study's table across experiments, from ``dvc exp show --json``.

Runs whose parameters (params.yaml: every value a run used, as conf/ composed it) are the same but
for ``seed`` (and the ``run`` section: how a run was started) are one setting: its row gives the mean and the standard deviation over the seeds (the
latest run of each seed), so a headline figure on a small test set carries its spread, and a 95%
interval that counts both the test questions' sampling and the seeds' variation
(``vqalab.evaluation.stats``; for the image gain, paired with the blind baseline's answers to the
same questions). With one seed a setting, only the questions are counted.
Rows of one data set and model made with other parameters say which (``setting``: e.g.
``train.max_epochs=1``), so a smoke run never passes for a full one. Rows show test accuracy beside
the blind (question-only) baseline and the image gain, SBERT similarity, training time, closed/open
accuracy and WUPS where the runs have them; and a plot of accuracy against training time.

With ``--baseline REV`` (a commit, branch or experiment), every other row is compared with the
baseline's row question by question (``metrics/predictions.jsonl`` of both) by one paired method
(``vqalab.evaluation.stats.paired_difference``): the difference in accuracy, its 95% interval and
the p-value of the same t statistic, so "no significant difference" (p >= 0.05) is shown exactly
when the interval holds 0; and how many seeds each side had (with one each, seed variation is not
counted, and the verdict says so).
The intervals and comparisons read each run's predictions: a run whose predictions are not here
(not pulled) keeps its row without them, and a warning says what to fetch.

    dvc exp run --queue -S seed=0,1,2 && dvc queue start   # three seeds of one setting
    vqalab compare                               # experiments of HEAD and the workspace
    vqalab compare --baseline main               # ... each compared with main's runs
    vqalab compare --rev main --rev HEAD --only exp-a --only exp-b --baseline exp-a   # two experiments
    vqalab compare --all-commits --out-md metrics/compare.md --out-png plots/compare.png
    dvc exp show --json > exps.json && vqalab compare --json exps.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vqalab.cli_arguments import Once
from vqalab.config import RUN_CONTROLS, flatten
from vqalab.evaluation.stats import PairedDifference, mean_interval, paired_difference
from vqalab.io import atomic_path
from vqalab.report.report import format_duration, plt, significance

QUALITY_FILE = "metrics/eval.json"
COST_FILE = "metrics/cost.json"
PARAMS_FILE = "params.yaml"
# Before params.yaml was composed from conf/, a run's values were in this file (read for older commits).
RESOLVED_FILE = "data/params/resolved.json"
PREDICTIONS_FILE = "metrics/predictions.jsonl"
# Figures averaged over seeds, in table order; a column is shown when any row has it.
AVERAGED = ("accuracy", "blind_accuracy", "image_gain", "accuracy_closed", "accuracy_open", "sbert_similarity",
            "wups_09", "wups_00", "train_time_s")
# Parameters that set how a run is started, not what it makes: runs differing in them are one setting.
NOT_A_SETTING = ("seed", "run.")
LEVEL = 0.95


def experiment_rows(exp_show: list[dict]) -> list[dict]:
    """Flatten ``dvc exp show --json`` into one dict per run that has evaluation metrics (``run_row``):
    its quality and cost figures beside its name, revision and parameters."""
    runs = []
    for commit in exp_show:
        runs.append(commit)
        for experiment in commit.get("experiments") or []:
            # A queued, running or failed experiment shows the metrics of the commit it started from:
            # only finished ones count.
            if experiment_state(experiment) != "success":
                continue
            runs.extend(experiment.get("revs") or [])
    rows = []
    for run in runs:
        quality = run_metrics(run, QUALITY_FILE)
        values = run_params((run.get("data") or {}).get("params") or {})
        if "accuracy" not in quality or not values:
            continue
        rows.append(run_row(run, values, {**run_metrics(run, COST_FILE), **quality}))
    return rows


def run_metrics(run: dict, path: str) -> dict:
    """The figures of metrics file ``path`` of one run of ``dvc exp show --json``; {} where it has none."""
    return ((((run.get("data") or {}).get("metrics") or {}).get(path) or {}).get("data")) or {}


def experiment_state(experiment: dict) -> str:
    """queued, running, success or failed: an experiment of ``dvc exp show --json`` (one run outside
    the queue has no executor, and finished)."""
    return (experiment.get("executor") or {}).get("state") or "success"


def run_row(run: dict, values: dict, figures: dict) -> dict:
    """One run (a commit or experiment of ``dvc exp show --json``) as the table reads it: ``run``
    (its name), ``rev``, ``timestamp``, ``params`` (params.yaml's ``values``, flattened), what
    ``aggregate_seeds`` groups by, and its ``figures``."""
    data = run.get("data") or {}
    return {"run": run.get("name") or data.get("rev") or run.get("rev"), "rev": data.get("rev") or run.get("rev"),
            "timestamp": data.get("timestamp") or "", "params": flatten(values),
            "dataset": values["dataset"]["name"], "model": values["model"]["name"], "profile": values["profile"],
            "seed": values["seed"], "data_setting": data_setting(values), **figures}


def run_params(params: dict) -> dict | None:
    """A run's params.yaml values (``dvc exp show``'s params of one run); for a commit from before
    conf/, its resolved values in params.yaml's layout (the family's own settings: strategy default),
    so older runs stay comparable."""
    values = (params.get(PARAMS_FILE) or {}).get("data") or {}
    if isinstance(values.get("model"), dict):
        return values
    resolved = ((params.get(RESOLVED_FILE) or {}).get("data") or {}).get("resolved")
    if not resolved:
        return None
    train = dict(resolved["train"])
    run = {name: train.pop(name) for name in RUN_CONTROLS if name in train}
    train.pop("batch_size", None)  # the family's, in model
    return {"dataset": {"name": resolved["dataset"], **resolved["dataset_config"]},
            "model": {"name": resolved["model"], **resolved["family"]}, "profile": resolved["profile"],
            "strategy": "default", "seed": resolved["seed"], **{k: resolved[k] for k in ("download", "preprocess", "evaluate", "report")
                                         if k in resolved}, "train": train, "run": run}


def data_setting(values: dict) -> str:
    """What tells two runs on the same data set apart (its variant, a user's records file, a
    smoke-run slice), in a few words for tables; where the same files come from (``source``) does not."""
    parts = [f"{name}={value}" for name, value in values["dataset"].items()
             if name not in ("name", "source") and value is not None]
    if values["download"]["max_images_per_split"] is not None:
        parts.append(f"first {values['download']['max_images_per_split']} images per split")
    return ", ".join(parts)


def is_setting(key: str) -> bool:
    """Whether a parameter (flattened) says what a run makes: not its seed, not how it was started."""
    return not any(key == name or (name.endswith(".") and key.startswith(name)) for name in NOT_A_SETTING)


def setting_key(row: dict) -> str:
    """Runs that differ only in their seed (or in how they were started) share a key."""
    return json.dumps({k: v for k, v in row["params"].items() if is_setting(k)}, sort_keys=True, default=str)


def aggregate_seeds(rows: list[dict], *, apart: bool = False, figures: Sequence[str] = AVERAGED) -> list[dict]:
    """One row per setting: the latest run of each seed (runs without a timestamp - the workspace -
    count as the latest), averaged; ``<figure>_sd`` is the standard deviation over seeds (0 for one).
    ``apart``: one row per run, named runs compared as themselves even where their settings agree;
    ``figures``: the figures averaged."""
    latest: dict[tuple, dict] = {}
    for row in rows:
        key = (setting_key(row) + (f"|{row['run']}" if apart else ""), row["seed"])
        if key not in latest or (row["timestamp"] or "9999") >= (latest[key]["timestamp"] or "9999"):
            latest[key] = row
    settings: dict[str, list[dict]] = {}
    for (setting, _), row in latest.items():
        settings.setdefault(setting, []).append(row)
    table = []
    for runs in settings.values():
        runs.sort(key=lambda r: r["seed"])
        first = runs[0]
        row = {"dataset": first["dataset"], "data_setting": first["data_setting"], "model": first["model"],
               "profile": first["profile"], "seeds": [r["seed"] for r in runs], "runs": [r["run"] for r in runs],
               "revs": [r["rev"] for r in runs], "params": {k: v for k, v in first["params"].items() if k != "seed"}}
        for name in figures:
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
        keys = sorted({k for row in group for k in row["params"] if is_setting(k)})
        varying = [k for k in keys if len({json.dumps(row["params"].get(k), default=str) for row in group}) > 1]
        for row in group:
            row["differs"] = ", ".join(f"{k}={row['params'].get(k)}" for k in varying)


def per_question(predictions: list[list[dict]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(question ids, model, blind): the correctness of the model's and of the blind baseline's
    answers, one row per run (seed) and one column per question, from the runs' predictions files
    in order. The runs must hold the same test questions."""
    ids = [p["id"] for p in predictions[0]]
    for run in predictions[1:]:
        if [p["id"] for p in run] != ids:
            raise ValueError("the runs of one setting predicted different test questions: they cannot be paired")
    model = np.array([[float(p["correct"]) for p in run] for run in predictions])
    blind = np.array([[float(p["blind_prediction"] == p["gold"]) for p in run] for run in predictions])
    return ids, model, blind


def check_predictions_match(rev: str, accuracy: float, predictions: list[dict]) -> None:
    """Fail unless the predictions of run ``rev`` give the accuracy its metrics/eval.json says: a
    workspace whose files come from two runs (``git checkout`` without ``dvc checkout``) would
    otherwise mix one run's figures with another's intervals and comparisons."""
    from_predictions = sum(bool(p["correct"]) for p in predictions) / max(1, len(predictions))
    if abs(from_predictions - accuracy) > 1e-9:
        raise SystemExit(f"{PREDICTIONS_FILE} of {rev} gives accuracy {from_predictions:.4f} but its {QUALITY_FILE} "
                         f"says {accuracy:.4f}: they come from different runs. Run `dvc checkout` (or rerun it) so "
                         f"that its outputs match its metrics.")


def add_intervals(row: dict, predictions: list[list[dict]]) -> None:
    """The row's 95% intervals of accuracy and image gain, from its test questions and its seeds."""
    _, model, blind = per_question(predictions)
    row["accuracy_ci95"] = mean_interval(model, level=LEVEL)
    # Each run's own gain: its blind baseline was fitted on the same data split (the seed draws it), so
    # the two are paired by run as well as by question, and a seed's spread is the model's, not half of it.
    row["image_gain_ci95"] = mean_interval(model - blind, level=LEVEL)


def add_comparisons(rows: list[dict], predictions: dict[str, list[list[dict]]], baseline: str,
                    runs: Sequence[dict] = ()) -> None:
    """``vs_baseline`` of every row with the baseline's test questions: the ``PairedDifference`` of
    its runs' per-question correctness from the baseline row's runs' (difference, interval and
    p-value over the questions and the seeds of both). ``runs``, every run before aggregation,
    tells a baseline that a later run replaced in its row from one that is not there."""
    base = next((r for r in rows if baseline in r["runs"] or any(rev.startswith(baseline) for rev in r["revs"])), None)
    if base is None:
        replaced = next((run for run in runs if run["run"] == baseline or str(run["rev"]).startswith(baseline)), None)
        if replaced is not None:
            raise SystemExit(f"--baseline {baseline}: a later run of the same setting and seed {replaced['seed']} stands "
                             f"for it in the table (the workspace counts as the latest): name that run (e.g. "
                             f"--baseline workspace), or keep every run apart with --only")
        raise SystemExit(f"--baseline {baseline}: no run of that name or revision has evaluation metrics")
    if base["runs"][0] not in predictions:
        raise SystemExit(f"--baseline {baseline}: its predictions are not here ({PREDICTIONS_FILE}): "
                         f"`dvc pull` or `dvc exp pull` them, or rerun it")
    base_ids, base_correct, _ = per_question(predictions[base["runs"][0]])
    for row in rows:
        if row is base:
            row["vs_baseline"] = "baseline"
            continue
        if row["runs"][0] not in predictions:
            row["vs_baseline"] = "predictions not here"
            continue
        ids, correct, _ = per_question(predictions[row["runs"][0]])
        if ids != base_ids:
            row["vs_baseline"] = "other test questions"
            continue
        row["vs_baseline"] = paired_difference(base_correct, correct, level=LEVEL)


def render_table(rows: list[dict], *, baseline: str | None = None) -> str:
    def spread(row, key, scale=100.0, unit="%"):
        if key not in row:
            return "-"
        if len(row["seeds"]) == 1:
            return f"{scale * row[key]:.2f}{unit}"
        return f"{scale * row[key]:.2f} ± {scale * row[f'{key}_sd']:.2f}{unit}"

    def interval(row, key, signed=False):
        if key not in row:
            return ""
        low, high = row[key]
        sign = "+" if signed else ""
        return f" [{100 * low:{sign}.2f}, {100 * high:{sign}.2f}]"

    def gain(row):
        if "image_gain" not in row:
            return "-"
        sd = f" ± {100 * row['image_gain_sd']:.2f}" if len(row["seeds"]) > 1 else ""
        return f"{100 * row['image_gain']:+.2f}{sd} pts{interval(row, 'image_gain_ci95', signed=True)}"

    def versus(row):
        comparison = row.get("vs_baseline")
        if not isinstance(comparison, PairedDifference):
            return comparison or "-"
        return (f"{100 * comparison.difference:+.2f} pts [{100 * comparison.low:+.2f}, {100 * comparison.high:+.2f}], "
                f"{significance(comparison.p_value, alpha=1 - comparison.level)} ({seeds_compared(comparison)})")

    header = ("| data set | model | profile | setting | seeds | test accuracy [95% CI] | blind baseline | "
              "image gain [95% CI] | closed | open | SBERT similarity | WUPS@0.9 | WUPS@0.0 | training time |")
    rule = "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    if baseline:
        header += f" vs {baseline} [95% CI], paired test over questions and seeds |"
        rule += "---|"
    lines = [header + " runs |", rule + "---|"]
    for r in rows:
        data = f"{r['dataset']} ({r['data_setting']})" if r["data_setting"] else r["dataset"]
        seeds = ", ".join(str(s) for s in r["seeds"])
        line = (f"| {data} | {r['model']} | {r['profile']} | {r.get('differs') or '-'} | {seeds} | "
                f"{spread(r, 'accuracy')}{interval(r, 'accuracy_ci95')} | {spread(r, 'blind_accuracy')} | {gain(r)} | "
                f"{spread(r, 'accuracy_closed')} | {spread(r, 'accuracy_open')} | {spread(r, 'sbert_similarity')} | "
                f"{spread(r, 'wups_09', unit='')} | {spread(r, 'wups_00', unit='')} | "
                f"{format_duration(r['train_time_s']) if 'train_time_s' in r else '-'} |")
        if baseline:
            line += f" {versus(r)} |"
        lines.append(line + f" {', '.join(r['runs'])} |")
    return "\n".join(lines) + "\n"


def seeds_compared(comparison: PairedDifference) -> str:
    """How many seeds each side of a comparison had, and whether their variation is counted."""
    if not comparison.seed_variation_counted:
        return "1 vs 1 seed: seed variation not counted"
    return f"{comparison.candidate_seeds} vs {comparison.baseline_seeds} seeds"


def plot_accuracy_vs_time(rows: list[dict], out_png: Path) -> None:
    """Mean test accuracy against mean training time per setting; bars: the spread over seeds."""
    rows = [r for r in rows if "train_time_s" in r]
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


def read_exp_show(json_path: Path | None, all_commits: bool, revs: list[str]) -> list[dict]:
    if json_path is not None:
        return json.loads(json_path.read_text(encoding="utf-8"))
    command = ["dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else []),
               *(arg for rev in revs for arg in ("--rev", rev))]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (run it in the project): {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


class PredictionsMissing(LookupError):
    """A run's predictions file is not here (not pulled, not reproduced)."""


def read_predictions(rev: str) -> list[dict]:
    """A run's metrics/predictions.jsonl: the workspace's file, or a revision's from DVC's cache;
    ``PredictionsMissing`` says what to run where it is not here."""
    if rev == "workspace":
        if not Path(PREDICTIONS_FILE).is_file():
            raise PredictionsMissing(f"the workspace has metrics but no {PREDICTIONS_FILE}: `dvc pull` or "
                                     f"`dvc checkout` its outputs, or run `dvc repro`")
        text = Path(PREDICTIONS_FILE).read_text(encoding="utf-8")
    else:
        import dvc.api

        try:
            text = dvc.api.read(PREDICTIONS_FILE, rev=rev)
        except Exception as err:  # noqa: BLE001 - DVC raises many kinds; the message says what to do
            raise PredictionsMissing(f"cannot read {PREDICTIONS_FILE} of {rev} ({type(err).__name__}: {err}): "
                                     f"`dvc pull` or `dvc exp pull` its outputs, or rerun it") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def add_predictions_figures(rows: list[dict], runs: list[dict], baseline: str | None) -> None:
    """Intervals for every row whose runs' predictions are here, and the comparisons with
    ``baseline``. A row whose predictions are not here keeps its figures without intervals (a
    warning names it and what to run); the baseline's must be here."""
    accuracy_of = {run["rev"]: run["accuracy"] for run in runs}
    predictions, missing = {}, []
    for row in rows:
        try:
            answers = [read_predictions(rev) for rev in row["revs"]]
        except PredictionsMissing as err:
            missing.append(f"{', '.join(row['runs'])}: {err}")
            continue
        for rev, run_answers in zip(row["revs"], answers):
            check_predictions_match(rev, accuracy_of[rev], run_answers)
        predictions[row["runs"][0]] = answers
        add_intervals(row, answers)
    if missing:
        print(f"{len(missing)} of {len(rows)} rows without intervals, their predictions are not here:\n  "
              + "\n  ".join(missing), file=sys.stderr)
    if baseline:
        add_comparisons(rows, predictions, baseline, runs)


def main(argv: list[str] | None = None, *, prog: str | None = None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, action=Once,
                        help="read this `dvc exp show --json` output instead of running it")
    parser.add_argument("--all-commits", action="store_true", help="include the experiments of every commit")
    parser.add_argument("--rev", action="append", default=[],
                        help="include the experiments of this commit (repeatable; default: HEAD)")
    parser.add_argument("--only", nargs="+", action="extend", metavar="RUN",
                        help="one row for each of these runs (names or revisions), and no others (repeatable)")
    parser.add_argument("--baseline", action=Once, help="a commit, branch or experiment: compare every row with its row")
    parser.add_argument("--no-intervals", action="store_true",
                        help="leave out the intervals and comparisons that read each run's predictions")
    parser.add_argument("--out-md", type=Path, action=Once, help="also write the table here")
    parser.add_argument("--out-png", type=Path, action=Once, help="write the accuracy vs training time plot here")
    args = parser.parse_args(argv)
    exp_show = read_exp_show(args.json, args.all_commits, args.rev)
    runs = experiment_rows(exp_show)
    if args.only:
        runs = [r for r in runs if r["run"] in args.only or any(str(r["rev"]).startswith(name) for name in args.only)]
    rows = aggregate_seeds(runs, apart=bool(args.only))
    if not rows:
        raise SystemExit(f"no run with {QUALITY_FILE} found: run `dvc repro` or `dvc exp run` first")
    if args.baseline and args.no_intervals:
        raise SystemExit("--baseline compares predictions question by question: it cannot go with --no-intervals")
    if not args.no_intervals:
        add_predictions_figures(rows, runs, args.baseline)
    table = render_table(rows, baseline=args.baseline)
    sys.stdout.write(table)
    if args.out_md:
        with atomic_path(args.out_md) as tmp:
            tmp.write_text(table, encoding="utf-8")
    if args.out_png:
        with atomic_path(args.out_png) as tmp:
            plot_accuracy_vs_time(rows, tmp)


if __name__ == "__main__":
    main()
