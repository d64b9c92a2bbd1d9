"""The report: the study's table, accuracy per answer type, data facts and training-curve plots."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

from vqalab.evaluation.metrics import FREQUENCY_BUCKETS

matplotlib.use("Agg")  # PNGs only: no display, no CDN
import matplotlib.pyplot as plt  # noqa: E402

FREQUENCY_ORDER = [name for name, _, _ in FREQUENCY_BUCKETS]


def read_curves(curves_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Read DVCLive's per-metric TSV files (step, value) into {metric: [(step, value), ...]}."""
    curves = {}
    for path in sorted(Path(curves_dir).rglob("*.tsv")):
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            name = path.stem
            curves[name] = [(int(row["step"]) + 1, float(row[name])) for row in rows]  # epochs count from 1
    return curves


def plot_training_curves(curves: dict[str, list[tuple[int, float]]], out_png: Path, *, title: str) -> None:
    shown = [name for name in ("train_loss", "val_accuracy") if name in curves]
    if not shown:
        raise ValueError("no train_loss or val_accuracy curve found: did the train stage log with DVCLive?")
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.5), squeeze=False)
    for ax, name in zip(axes[0], shown):
        epochs, values = zip(*curves[name])
        ax.plot(epochs, values, marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, format="png", dpi=100)
    plt.close(fig)


def plot_accuracy_bars(groups: dict[str, dict], out_png: Path, *, title: str, order: list[str] | None = None) -> None:
    """A bar per group: accuracy, with the number of test questions on each bar."""
    names = [n for n in (order or sorted(groups)) if n in groups]
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(names)), 3.5))
    bars = ax.bar(names, [100 * groups[n]["accuracy"] for n in names], color="#4c72b0")
    for bar, name in zip(bars, names):
        ax.annotate(f"n={groups[name]['n']}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png, format="png", dpi=100)
    plt.close(fig)


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def points(fraction: float) -> str:
    """A difference of accuracies in percentage points, signed."""
    return f"{100 * fraction:+.2f} pts"


def blind_verdict(metrics: dict) -> str:
    """What the blind baseline says about the run, in words."""
    blind = (f"The blind baseline answers from the question alone (logistic regression on the SBERT "
             f"embedding, C = {metrics['blind_C']:g} chosen by validation log-loss)")
    if metrics["image_gain"] < 0:
        return (f"**Warning: this model scores {points(-metrics['image_gain'])[1:]} below the blind baseline: it is "
                f"not using the image.** {blind}.")
    return f"{blind}; the image adds {points(metrics['image_gain'])}."


def render_report(metrics: dict, stats: dict, *, plot_names: list[str]) -> str:
    lines = [
        f"# vqalab report: {metrics['model']} ({metrics['profile']} profile) on {metrics['dataset']}",
        "",
        "| model | test accuracy | blind baseline | image gain | SBERT similarity | training time |",
        "|---|---|---|---|---|---|",
        f"| {metrics['model']} | {pct(metrics['accuracy'])} | {pct(metrics['blind_accuracy'])} | "
        f"{points(metrics['image_gain'])} | {pct(metrics['sbert_similarity'])} | {format_duration(metrics['train_time_s'])} |",
        "",
        blind_verdict(metrics),
        "",
        f"SBERT scorer: `{metrics['sbert_model']}`. Best validation epoch: {metrics['best_epoch']}. "
        f"Parameters: {metrics['trainable_params']:,} trainable of {metrics['total_params']:,}. "
        f"Test inference: {metrics['eval_time_s']:.1f} s for {metrics['n']:,} questions.",
        "",
        "## Accuracy per answer type",
        "",
        "| answer type | questions | accuracy | blind baseline |",
        "|---|---|---|---|",
    ]
    for answer_type in ("closed", "open"):
        if f"n_{answer_type}" in metrics:
            lines.append(f"| {answer_type} | {metrics[f'n_{answer_type}']:,} | {pct(metrics[f'accuracy_{answer_type}'])} | "
                         f"{pct(metrics[f'blind_accuracy_{answer_type}'])} |")
    lines.append(f"| all | {metrics['n']:,} | {pct(metrics['accuracy'])} | {pct(metrics['blind_accuracy'])} |")
    lines += ["", "## Accuracy by answer frequency in train", "",
              "unseen: never a training answer; tail: 1-5 training questions; body: 6-50; head: more. "
              f"Ceiling (test answers seen in train): {pct(metrics['answer_coverage'])}; achieved: {pct(metrics['accuracy'])}.",
              "", "| bucket | questions | accuracy |", "|---|---|---|"]
    for bucket in FREQUENCY_ORDER:
        if bucket in metrics["by_frequency"]:
            group = metrics["by_frequency"][bucket]
            lines.append(f"| {bucket} | {group['n']:,} | {pct(group['accuracy'])} |")
    if "by_question_type" in metrics:
        lines += ["", "## Accuracy by question type", "", "| question type | questions | accuracy |", "|---|---|---|"]
        for name, group in sorted(metrics["by_question_type"].items(), key=lambda kv: -kv[1]["n"]):
            lines.append(f"| {name} | {group['n']:,} | {pct(group['accuracy'])} |")
    lines += ["", "## WUPS and cost", ""]
    if "wups_09" in metrics:
        lines.append(f"WUPS@0.9: {100 * metrics['wups_09']:.2f}; WUPS@0.0: {100 * metrics['wups_00']:.2f}.")
    else:
        lines.append(f"WUPS: unavailable ({metrics['wups_unavailable']}).")
    gpu = f", peak GPU memory {metrics['peak_gpu_mb']:,.0f} MB" if "peak_gpu_mb" in metrics else ""
    lines.append(f"Inference: {metrics['latency_ms_per_question']:.2f} ms per question, "
                 f"{metrics['test_samples_per_s']:.1f} questions/s; peak CPU memory (RSS) "
                 f"{metrics['peak_rss_mb']:,.0f} MB{gpu}.")
    if len(metrics.get("modes", {})) > 1:
        lines += ["", "## Prediction modes", "",
                  f"The headline figures use `{metrics['prediction_mode']}`.", "",
                  "| mode | accuracy | closed | open | SBERT similarity | test questions/s |", "|---|---|---|---|---|---|"]
        for mode, m in metrics["modes"].items():
            closed = pct(m["accuracy_closed"]) if "accuracy_closed" in m else "-"
            opened = pct(m["accuracy_open"]) if "accuracy_open" in m else "-"
            lines.append(f"| {mode} | {pct(m['accuracy'])} | {closed} | {opened} | {pct(m['sbert_similarity'])} | "
                         f"{m['test_samples_per_s']:.1f} |")
    lines += ["", "## Data", "", "| split | questions | images | distinct answers | answers outside the vocabulary |",
              "|---|---|---|---|---|"]
    for split in ("train", "val", "test"):
        s = stats[split]
        lines.append(f"| {split} | {s['questions']:,} | {s['images']:,} | {s['answers']:,} | {s['answers_outside_vocabulary']:,} |")
    lines += [
        "",
        f"Answer vocabulary (from train): {stats['answer_vocabulary']} answers; images at {stats['image_size']} px. "
        f"Test answer coverage, the ceiling of a classifier: {pct(stats['test']['answer_coverage'])}. "
        f"Images shared train/val: {stats['images_shared_train_val']}; test images also in train or val: "
        f"{stats['test_images_seen_in_train_or_val']} of {stats['test']['images']} by path"
        + (f", {stats['test_images_seen_in_train_or_val_by_content']} by content (the same picture under "
           f"another name)" if "test_images_seen_in_train_or_val_by_content" in stats else "") + "."
        + (f" Questions whose rephrasing is in train: {stats['test']['rephrased_in_train']} of "
           f"{stats['test']['questions']} test, {stats['val']['rephrased_in_train']} of {stats['val']['questions']} "
           f"validation." if stats["test"].get("rephrased_in_train") else ""),
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{name}](../plots/{name})" for name in plot_names]
    return "\n".join(lines) + "\n"
