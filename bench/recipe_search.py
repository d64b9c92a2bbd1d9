"""A recipe's hyper-parameters searched on validation only, over seeds.

Each ``--set KEY=V1,V2,...`` varies one parameter around params.yaml as the pipeline resolves it
(after the data set's recipe), the others held at that base: the base setting plus one setting per
other value. Every run is the pipeline's: for every seed - which also draws the validation split -
the data is prepared once per image geometry, the frozen encoders' features once per encoder setting
and the blind baseline once (``vqalab.benchmark.runs``); then each setting trains as the train stage
does (``vqalab.pipeline.train.train_model``) and its best validation accuracy and best epoch are
kept. The table gives each setting's mean and standard deviation over seeds (``vqalab compare``'s
aggregation), best first. The test split is never scored.

    python bench/recipe_search.py --dataset vqa_rad --option variant=public --source /path/to/vqa_rad \\
        --seeds 0 1 2 --set resnet_bert.tiny.image_size=224,320,448 --set train.weight_decay=0.01,0.05,0.1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from vqalab.benchmark.runs import RunInputs
from vqalab.config import flatten
from vqalab.params import Params
from vqalab.pipeline.train import train_model
from vqalab.report.compare import NOT_A_SETTING, aggregate_seeds, data_setting
from vqalab.resolve import load_params, merge_overrides
from vqalab.runtime import resolve_device

ROOT = Path(__file__).resolve().parents[1]


def parse_set(text: str) -> tuple[tuple[str, ...], list]:
    """``a.b.c=1,2`` -> (("a", "b", "c"), [1, 2]), values read as YAML (numbers, null, true)."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"--set wants KEY=V1,V2,... (e.g. train.weight_decay=0.01,0.05), "
                                         f"got {text!r}")
    if key in NOT_A_SETTING:
        raise argparse.ArgumentTypeError(f"--set {key}: it sets how a run is started, not what it makes "
                                         f"(seeds: --seeds)")
    return tuple(key.split(".")), [yaml.safe_load(v) for v in values.split(",")]


def nested(path: tuple[str, ...], value) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value


def settings(varied: list[tuple[tuple[str, ...], list]], base_values: dict) -> list[tuple[str, dict]]:
    """("base", {}) then one (label, override) per value that differs from the base value."""
    out = [("base", {})]
    for path, values in varied:
        for value in values:
            if value != base_values[path]:
                out.append((f"{'.'.join(path)}={value}", nested(path, value)))
    return out


def lookup(params: Params, path: tuple[str, ...]):
    """The value params.yaml resolves for ``path`` (the chosen family's section after the recipe)."""
    if path[0] == params.model:
        return params.family[path[-1]]
    node = params.values
    for key in path:
        node = node[key]
    return node


def seed_row(label: str, params: Params, *, val_accuracy: float, train_s: float) -> dict:
    """One run as ``vqalab compare`` reads a run, for its aggregation over seeds: named by its
    setting, with its validation accuracy (the test split is never scored here)."""
    values = params.values
    return {"run": label, "rev": label, "timestamp": "", "params": flatten(values), "dataset": params.dataset,
            "model": params.model, "profile": params.profile, "seed": params.seed,
            "data_setting": data_setting(values), "val_accuracy": val_accuracy, "train_time_s": train_s}


def summary_rows(results: dict[str, list[dict]], seed_rows: list[dict]) -> list[dict]:
    """Each setting's mean and standard deviation over seeds, with its runs, best first."""
    rows = [{"setting": row["runs"][0], "mean_val_accuracy": row["val_accuracy"], "sd_val_accuracy": row["val_accuracy_sd"],
             "runs": results[row["runs"][0]]} for row in aggregate_seeds(seed_rows, figures=("val_accuracy",))]
    return sorted(rows, key=lambda row: -row["mean_val_accuracy"])


def print_table(rows: list[dict], *, seeds: list[int]) -> None:
    print(f"| setting | validation accuracy (mean ± sd over seeds {', '.join(map(str, seeds))}) | per seed "
          f"| best epochs | train s |\n|---|---|---|---|---|")
    for row in rows:
        runs = row["runs"]
        print(f"| {row['setting']} | {100 * row['mean_val_accuracy']:.2f} ± {100 * row['sd_val_accuracy']:.2f}% | "
              f"{' / '.join(format(100 * r['best_val_accuracy'], '.2f') for r in runs)} | "
              f"{' / '.join(str(r['best_epoch']) for r in runs)} | "
              f"{statistics.mean(r['train_s'] for r in runs):.0f} |")


def check_settings(grid: list[tuple[str, dict]], common: dict) -> None:
    """Every setting's parameters checked, and told apart from the others', before the first run starts."""
    resolved: dict[str, str] = {}
    for label, override in grid:
        params = load_params(ROOT / "params.yaml", merge_overrides(common, override))
        values = json.dumps(params.values, sort_keys=True)
        if values in resolved:
            raise SystemExit(f"--set {label} gives the parameters of {resolved[values]}: "
                             f"it changes nothing a run reads")
        resolved[values] = label


def search(grid: list[tuple[str, dict]], common: dict, *, seeds: list[int], work: Path) -> list[dict]:
    """Every setting trained with every seed, as the train stage trains; the settings' rows, best first."""
    results: dict[str, list[dict]] = {label: [] for label, _ in grid}
    seed_rows = []
    for seed in seeds:
        inputs = RunInputs(work)  # this seed's data and features (its own validation split)
        for label, override in grid:
            params = load_params(ROOT / "params.yaml", merge_overrides(common, {**override, "seed": seed}))
            device = resolve_device(params.train.device)
            result = train_model(params, inputs.data(params), inputs.features(params, device=device),
                                 inputs.blind(params), device=device, where=inputs.processed(params)).result
            results[label].append({"seed": seed, "best_val_accuracy": result.best_val_accuracy,
                                   "best_epoch": result.best_epoch, "train_s": result.train_time_s})
            seed_rows.append(seed_row(label, params, val_accuracy=result.best_val_accuracy,
                                      train_s=result.train_time_s))
            print(f"seed {seed} {label}: val {result.best_val_accuracy:.4f} (epoch {result.best_epoch}, "
                  f"{result.train_time_s:.0f} s)", file=sys.stderr, flush=True)
    return summary_rows(results, seed_rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--option", action="append", default=[], help="a data set option, e.g. variant=frame")
    parser.add_argument("--source", help="the data set's source (default: params.yaml's), e.g. a local copy")
    parser.add_argument("--model", default="resnet_bert")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="varied", type=parse_set, action="append", default=[], help="KEY=V1,V2,...")
    parser.add_argument("--max-images", type=int, help="keep the first N images of each split (a quick check)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench/.work",
                        help="folder for the prepared data and blind baselines")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)

    options = dict(option.split("=", 1) for option in args.option)
    dataset_values = {**options, **({"source": args.source} if args.source else {})}
    common = {"dataset": args.dataset, "model": args.model, "datasets": {args.dataset: dataset_values},
              "download": {"max_images_per_split": args.max_images}}
    base_values = {path: lookup(load_params(ROOT / "params.yaml", common), path) for path, _ in args.varied}
    grid = settings(args.varied, base_values)
    described = ", ".join(f"{'.'.join(path)}={value}" for path, value in base_values.items())
    print(f"base: {described}; {len(grid)} settings x {len(args.seeds)} seeds", file=sys.stderr, flush=True)
    check_settings(grid, common)
    start = time.perf_counter()
    rows = search(grid, common, seeds=args.seeds, work=args.work)
    print_table(rows, seeds=args.seeds)
    print(f"\n{args.dataset} {options or ''} {args.model}; wall time {time.perf_counter() - start:.0f} s; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; the test split was not scored.")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"dataset": args.dataset, "options": options, "model": args.model,
                                   "seeds": args.seeds, "base": {".".join(p): v for p, v in base_values.items()},
                                   "rows": rows}, indent=1, default=str))
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
