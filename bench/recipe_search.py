"""A recipe's hyper-parameters searched on validation only, over seeds.

Each ``--set KEY=V1,V2,...`` varies one parameter around params.yaml as the pipeline resolves it
(after the data set's recipe), the others held at that base: the base setting plus one setting per
other value. For every seed - which also draws the validation split - the data is prepared once per
image geometry and the frozen encoders' features once per encoder setting; then each setting trains
as the train stage does (``vqalab.params.load_params`` overrides, ``harness.build_model``,
``prepare_for_training``, ``fit``) and its best validation accuracy and best epoch are kept. The
table gives each setting's mean and standard deviation over seeds, best first. The test split is
never scored.

    python bench/recipe_search.py --dataset vqa_rad --option variant=public --source ../shared/data/vqa_rad \\
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_cost import ROOT, prepare_data  # noqa: E402


def parse_set(text: str) -> tuple[tuple[str, ...], list]:
    """``a.b.c=1,2`` -> (("a", "b", "c"), [1, 2]), values read as YAML (numbers, null, true)."""
    key, sep, values = text.partition("=")
    if not sep or not key or not values:
        raise argparse.ArgumentTypeError(f"--set wants KEY=V1,V2,... (e.g. train.weight_decay=0.01,0.05), got {text!r}")
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


def lookup(params, path: tuple[str, ...]):
    """The value params.yaml resolves for ``path`` (the chosen family's section after the recipe)."""
    if path[0] == params.model:
        return getattr(params.family, path[-1])
    section = getattr(params, path[0])
    for key in path[1:]:
        section = getattr(section, key) if not isinstance(section, dict) else section[key]
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--option", action="append", default=[], help="a data set option, e.g. variant=frame")
    parser.add_argument("--source", help="the data set's source (a local copy)")
    parser.add_argument("--model", default="resnet_bert")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="varied", type=parse_set, action="append", default=[], help="KEY=V1,V2,...")
    parser.add_argument("--max-images", type=int, help="keep the first N images of each split (a quick check)")
    parser.add_argument("--work", type=Path, default=ROOT / "bench/.work", help="folder for the prepared data")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()

    from vqalab.data.dataset import ProcessedData
    from vqalab.data.features import CachedFeatures, compute_features
    from vqalab.harness import build_model
    from vqalab.params import load_params, merge_overrides
    from vqalab.runtime import resolve_device
    from vqalab.training.loop import fit

    options = dict(option.split("=", 1) for option in args.option)
    dataset_values = {**options, **({"source": args.source} if args.source else {})}
    common = {"dataset": args.dataset, "model": args.model, "datasets": {args.dataset: dataset_values}}
    base_params = load_params(ROOT / "params.yaml", common)
    base_values = {path: lookup(base_params, path) for path, _ in args.varied}
    grid = settings(args.varied, base_values)
    described = ", ".join(f"{'.'.join(path)}={value}" for path, value in base_values.items())
    print(f"base: {described}; "
          f"{len(grid)} settings x {len(args.seeds)} seeds", file=sys.stderr, flush=True)
    # Every setting's parameters are checked before the first run starts.
    for _, override in grid:
        load_params(ROOT / "params.yaml", merge_overrides(common, override))

    results: dict[str, list[dict]] = {label: [] for label, _ in grid}
    start = time.perf_counter()
    for seed in args.seeds:
        # This seed's prepared data sets (one per image geometry) and features (one per encoder setting).
        data_cache: dict[Path, ProcessedData] = {}
        feature_cache: dict[tuple, CachedFeatures] = {}
        for label, override in grid:
            params = load_params(ROOT / "params.yaml", merge_overrides(merge_overrides(common, override), {"seed": seed}))
            device = resolve_device(params.train.device)
            processed = prepare_data(args.dataset, params=params, source=args.source, max_images=args.max_images,
                                     work=args.work, options=options)
            if processed not in data_cache:
                data_cache[processed] = ProcessedData.load(processed)
            data = data_cache[processed]
            model = build_model(params, data, where=processed)
            key = (str(processed), json.dumps(model.feature_fingerprints(), sort_keys=True))
            if key not in feature_cache:
                questions = sorted({r.question for r in data.records})
                tensors, fingerprints = compute_features(model, data.images, questions,
                                                         batch_size=params.evaluate.batch_size, device=device)
                feature_cache[key] = CachedFeatures.from_tensors(tensors, fingerprints, questions)
            features = feature_cache[key]
            train_set, val_set = data.split("train", features), data.split("val", features)
            model.prepare_for_training(train_set, val_set)
            result = fit(model, train_set, val_set, params=params.train, device=device, seed=seed)
            results[label].append({"seed": seed, "best_val_accuracy": result.best_val_accuracy,
                                   "best_epoch": result.best_epoch, "train_s": result.train_time_s})
            print(f"seed {seed} {label}: val {result.best_val_accuracy:.4f} (epoch {result.best_epoch}, "
                  f"{result.train_time_s:.0f} s)", file=sys.stderr, flush=True)

    rows = []
    for label, runs in results.items():
        accuracies = [r["best_val_accuracy"] for r in runs]
        rows.append({"setting": label, "mean_val_accuracy": statistics.mean(accuracies),
                     "sd_val_accuracy": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0, "runs": runs})
    rows.sort(key=lambda row: -row["mean_val_accuracy"])
    print(f"| setting | validation accuracy (mean ± sd over seeds {', '.join(map(str, args.seeds))}) | per seed "
          f"| best epochs | train s |\n|---|---|---|---|---|")
    for row in rows:
        runs = row["runs"]
        print(f"| {row['setting']} | {100 * row['mean_val_accuracy']:.2f} ± {100 * row['sd_val_accuracy']:.2f}% | "
              f"{' / '.join(format(100 * r['best_val_accuracy'], '.2f') for r in runs)} | "
              f"{' / '.join(str(r['best_epoch']) for r in runs)} | "
              f"{statistics.mean(r['train_s'] for r in runs):.0f} |")
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
