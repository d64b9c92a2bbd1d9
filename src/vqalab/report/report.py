"""The report: the study's table, accuracy per answer type, data facts and training-curve plots."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

from vqalab.evaluation.metrics import FREQUENCY_BUCKETS

matplotlib.use("Agg")  # PNGs only: no display, no CDN
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

FREQUENCY_ORDER = [name for name, _, _ in FREQUENCY_BUCKETS]


def read_curves(curves_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Read DVCLive's per-metric TSV files (step = epoch, value) into {metric: [(epoch, value), ...]}."""
    curves = {}
    for path in sorted(Path(curves_dir).rglob("*.tsv")):
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if rows:
            name = path.stem
            curves[name] = [(int(row["step"]), float(row[name])) for row in rows]
    return curves


def plot_training_curves(curves: dict[str, list[tuple[int, float]]], out_png: Path, *, title: str, kept_epoch: int,
                         blind_val_accuracy: float) -> None:
    """Training loss and validation accuracy per epoch, the kept epoch marked on both, the blind
    baseline's validation accuracy as a line beside the model's."""
    shown = [name for name in ("train_loss", "val_accuracy") if name in curves]
    if not shown:
        raise ValueError("no train_loss or val_accuracy curve found: did the train stage log with DVCLive?")
    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.8), squeeze=False)
    for ax, name in zip(axes[0], shown):
        epochs, values = zip(*curves[name])
        ax.plot(epochs, values, marker="o", label="model")
        if kept_epoch in epochs:
            ax.plot([kept_epoch], [values[epochs.index(kept_epoch)]], marker="*", markersize=16, color="#dd8452",
                    linestyle="none", label=f"kept: epoch {kept_epoch}")
        if name == "val_accuracy":
            ax.axhline(blind_val_accuracy, color="grey", linestyle="--", label="blind baseline")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, format="png", dpi=100)
    plt.close(fig)


def plot_accuracy_bars(rows: list[dict], out_png: Path, *, group: str, title: str) -> None:
    """The rows of an accuracy plot's data file (``vqalab.evaluation.outputs.plot_rows``) as bars:
    each group's model bar beside its blind-baseline bar, the number of test questions on each group."""
    groups = list(dict.fromkeys(row[group].split(", ")[0] for row in rows))
    model = {row[group]: row for row in rows if ", " not in row[group]}
    blind = {row[group].split(", ")[0]: row for row in rows if ", " in row[group]}
    x = range(len(groups))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(groups)), 3.8))
    ax.bar([i - 0.2 for i in x], [100 * model[g]["accuracy"] for g in groups], width=0.4, color="#4c72b0",
           label="model")
    ax.bar([i + 0.2 for i in x], [100 * blind[g]["accuracy"] for g in groups], width=0.4, color="#bbbbbb",
           label="blind baseline")
    for i, g in zip(x, groups):
        ax.annotate(f"n={model[g]['questions']:,}", (i, 100 * max(model[g]["accuracy"], blind[g]["accuracy"])),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), groups)
    ax.set_ylim(0, 110)
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8, loc="lower right")
    # Wrapped to the figure, so a long title is never cut off.
    ax.set_title(title, wrap=True, fontsize=10)
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


def interval(bounds: list[float], *, signed: bool = False) -> str:
    """A 95% interval of a fraction, in percent (points where ``signed``)."""
    sign = "+" if signed else ""
    return f"[{100 * bounds[0]:{sign}.2f}, {100 * bounds[1]:{sign}.2f}]"


def significance(p_value: float, *, alpha: float = 0.05) -> str:
    """A paired test's verdict in words (``vqalab.evaluation.stats.paired_difference``'s p-value)."""
    return f"p = {p_value:.3g}" if p_value < alpha else f"p = {p_value:.3g}: no significant difference"


def blind_verdict(quality: dict, details: dict) -> str:
    """What the blind baseline and the shuffled images say about the run, in words."""
    blind = (f"The blind baseline answers from the question alone (logistic regression on the SBERT "
             f"embedding, C = {details['blind_C']:g} chosen by validation log-loss)")
    if quality["image_gain"] < 0:
        verdict = (f"**Warning: this model scores {points(-quality['image_gain'])[1:]} below the blind baseline: it is "
                   f"not using the image.** {blind}.")
    else:
        verdict = (f"{blind}; the image adds {points(quality['image_gain'])} "
                   f"(95% interval {interval(quality['image_gain_ci95'], signed=True)} points, paired over the test "
                   f"questions, {significance(details['image_gain_p'])}). One training run: seed variation is not "
                   f"counted; `vqalab compare` over several seeds of this setting counts it.")
    shuffled = (f"With the test images shuffled among the questions, accuracy is {pct(quality['shuffled_image_accuracy'])} "
                f"and {pct(quality['image_sensitivity'])} of the answers change")
    if quality["image_sensitivity"] == 0:
        return f"{verdict} **{shuffled}: the model does not read the image.**"
    return f"{verdict} {shuffled}."


def model_and_blind(rows: list[dict], group: str) -> list[tuple[str, dict, dict]]:
    """(group, model row, blind row) of a plot's data file, in its order."""
    blind = {row[group].split(", ")[0]: row for row in rows if ", " in row[group]}
    return [(row[group], row, blind[row[group]]) for row in rows if ", " not in row[group]]


def render_report(quality: dict, cost: dict, details: dict, plots: dict[str, list[dict]], stats: dict, *,
                  plot_names: list[str]) -> str:
    """The Markdown report of one run: ``quality``, ``cost`` and ``details`` as the evaluate stage
    wrote them (metrics/eval.json, metrics/cost.json, metrics/eval_details.json), ``plots`` its plot
    data (by file stem), ``stats`` the preprocess stage's."""
    lines = [
        f"# vqalab report: {details['model']} ({details['profile']} profile) on {details['dataset']}",
        "",
        "| model | test accuracy [95% CI] | blind baseline | image gain [95% CI] | SBERT similarity | training time |",
        "|---|---|---|---|---|---|",
        f"| {details['model']} | {pct(quality['accuracy'])} {interval(quality['accuracy_ci95'])} | "
        f"{pct(quality['blind_accuracy'])} | {points(quality['image_gain'])} {interval(quality['image_gain_ci95'], signed=True)} | "
        f"{pct(quality['sbert_similarity'])} | {format_duration(cost['train_time_s'])} |",
        "",
        blind_verdict(quality, details),
        "",
        f"SBERT scorer: `{details['sbert_model']}`. Best validation epoch: {details['best_epoch']}. "
        f"Parameters: {cost['trainable_params']:,} trainable of {cost['total_params']:,}. "
        f"Test inference: {details['eval_time_s']:.1f} s for {details['n']:,} questions.",
        "",
        "## Accuracy per answer type",
        "",
        "| answer type | questions | accuracy | blind baseline |",
        "|---|---|---|---|",
    ]
    for answer_type, model, blind in model_and_blind(plots["accuracy_by_answer_type"], "answer_type"):
        lines.append(f"| {answer_type} | {model['questions']:,} | {pct(model['accuracy'])} | {pct(blind['accuracy'])} |")
    lines += ["", "## Accuracy by answer frequency in train", "",
              "unseen: never a training answer; tail: 1-5 training questions; body: 6-50; head: more. "
              f"Ceiling (test answers seen in train): {pct(quality['answer_coverage'])}; achieved: {pct(quality['accuracy'])}.",
              "", "| bucket | questions | accuracy | blind baseline |", "|---|---|---|---|"]
    for bucket, model, blind in model_and_blind(plots["accuracy_by_frequency"], "bucket"):
        lines.append(f"| {bucket} | {model['questions']:,} | {pct(model['accuracy'])} | {pct(blind['accuracy'])} |")
    if "by_question_type" in details:
        lines += ["", "## Accuracy by question type", "", "| question type | questions | accuracy |", "|---|---|---|"]
        for name, group in sorted(details["by_question_type"].items(), key=lambda kv: -kv[1]["n"]):
            lines.append(f"| {name} | {group['n']:,} | {pct(group['accuracy'])} |")
    lines += ["", "## WUPS and cost", ""]
    if "wups_09" in quality:
        lines.append(f"WUPS@0.9: {100 * quality['wups_09']:.2f}; WUPS@0.0: {100 * quality['wups_00']:.2f}.")
    else:
        lines.append(f"WUPS: unavailable ({details['wups_unavailable']}).")
    gpu = f", peak GPU memory {cost['peak_gpu_mb']:,.0f} MB" if "peak_gpu_mb" in cost else ""
    lines.append(f"Training: {cost['train_samples_per_s']:,.0f} questions/s. Inference: "
                 f"{cost['test_ms_per_question']:.2f} ms per question, {1000 / cost['test_ms_per_question']:,.1f} "
                 f"questions/s; peak CPU memory (RSS) {cost['peak_rss_mb']:,.0f} MB{gpu}.")
    if "modes" in details:
        lines += ["", "## Prediction modes", "",
                  f"The headline figures use `{details['prediction_mode']}`.", "",
                  "| mode | accuracy | closed | open | SBERT similarity | ms per question |", "|---|---|---|---|---|---|"]
        for mode, m in details["modes"].items():
            closed = pct(m["accuracy_closed"]) if "accuracy_closed" in m else "-"
            opened = pct(m["accuracy_open"]) if "accuracy_open" in m else "-"
            lines.append(f"| {mode} | {pct(m['accuracy'])} | {closed} | {opened} | {pct(m['sbert_similarity'])} | "
                         f"{m['test_ms_per_question']:.2f} |")
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
