"""Stage train: build the chosen family, train it with early stopping on validation, save the best.

With ``train.launcher`` other than python (e.g. ``accelerate launch --multi_gpu --num_processes 4``)
the stage starts itself again under that launcher; the launcher is not in the stage's command, so
changing it does not make DVC retrain a model that is up to date.
"""

import os
import resource
import shlex
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from dvclive import Live

import vqalab
from vqalab.params import Params
from vqalab.data.dataset import ProcessedData
from vqalab.data.features import CachedFeatures
from vqalab.io import digest
from vqalab.harness import build_model
from vqalab.models.checkpoint import save_checkpoint
from vqalab.stage import run_stage, stage_parser
from vqalab.training.device import library_versions, resolve_device
from vqalab.training.distributed import is_main_process
from vqalab.training.loop import fit


def main(argv=None) -> None:
    parser = stage_parser(__doc__, stage="train")
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--features", type=Path, required=True, help="the features stage's folder (cached frozen-encoder outputs)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--live", type=Path, required=True, help="DVCLive folder for the training curves")
    parser.add_argument("--state", type=Path, required=True,
                        help="scratch file with the last completed epoch's training state (train.resume continues from it)")
    args = parser.parse_args(argv)
    params = Params.read(args.params, stage="train")
    train_params = params.train
    if train_params.launcher != "python" and "WORLD_SIZE" not in os.environ:
        launched = subprocess.run([*shlex.split(train_params.launcher), sys.argv[0], *sys.argv[1:]])
        sys.exit(launched.returncode)
    device = resolve_device(train_params.device)
    data = ProcessedData.load(args.data)
    model = build_model(params, data, where=args.data)
    features = CachedFeatures.load(args.features)
    features.check(model, where=args.features)
    train_set, val_set = data.split("train", features), data.split("val", features)
    # Closed-form parts (a question prior, candidate answers) come from train, chosen on validation.
    prepared = model.prepare_for_training(train_set, val_set)

    # What the run depends on: a saved state made from anything else is not resumed.
    fingerprint = {"params": params.dependency_values(), "data": digest(args.data), "features": digest(args.features),
                   "code": {"vqalab": vqalab.__version__, "source": digest(Path(vqalab.__file__).parent, pattern="*.py")}}
    args.state.parent.mkdir(parents=True, exist_ok=True)
    if not is_main_process():
        # The other processes of a multi-process launch train their share of each batch and write nothing.
        fit(model, train_set, val_set, params=train_params, device=device, seed=params.seed, state_path=args.state,
            fingerprint=fingerprint)
        return
    with Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        def log_epoch(epoch: int, metrics: dict) -> None:
            live.step = epoch  # the curves' x is the epoch; 0 is the untrained model where it is validated
            for name, value in metrics.items():
                live.log_metric(name, value)

        result = fit(model, train_set, val_set, params=train_params, device=device, seed=params.seed,
                     on_epoch_end=log_epoch, state_path=args.state, fingerprint=fingerprint)
        # The summary (`dvc exp show`, `dvc metrics diff`) is the kept epoch's, not the last one's:
        # its validation figures, not its timing (which differs in every run).
        live.summary = best_epoch_summary(result)
        live.step = result.best_epoch

    summary = asdict(result)
    history = summary.pop("history")  # the curves live in the DVCLive folder
    save_checkpoint(model, args.out, info={
        "dataset": params.dataset,
        "profile": params.profile,
        "seed": params.seed,
        "device": str(device),
        "precision": train_params.precision,
        "train_params": asdict(train_params),
        "cached_features": sorted(features.fingerprints),
        "versions": library_versions(),
        "n_train": len(train_set),
        "n_val": len(val_set),
        **summary,
        "train_samples_per_s": statistics.fmean(e["train_samples_per_s"] for e in history) if history else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        **prepared,
        **model.parameter_counts(),
    })
    args.state.unlink(missing_ok=True)  # the run is complete: a rerun starts afresh


def best_epoch_summary(result) -> dict:
    """The kept epoch's validation accuracy and training loss (epoch 0, the untrained model, has no loss)."""
    summary = {"val_accuracy": result.best_val_accuracy}
    kept = [e for e in result.history if e["epoch"] == result.best_epoch]
    if kept:
        summary["train_loss"] = kept[0]["train_loss"]
    return summary


if __name__ == "__main__":
    run_stage(main)
