"""Stage train: build the chosen family, train it with early stopping on validation, save the best
(``vqalab.pipeline.train``).

With ``run.launcher`` other than python (e.g. ``accelerate launch --multi_gpu --num_processes 4``)
the stage starts itself again under that launcher; the launcher is not in the stage's command, so
changing it does not make DVC retrain a model that is up to date.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from vqalab.params import load_params
from vqalab.stage import run_stage, stage_parser


def main(argv=None) -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the preprocess stage's folder")
    parser.add_argument("--features", type=Path, required=True, help="the features stage's folder (cached frozen-encoder outputs)")
    parser.add_argument("--blind", type=Path, required=True, help="the blind stage's folder (the question prior's source)")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--live", type=Path, required=True, help="DVCLive folder for the training curves")
    parser.add_argument("--cost", type=Path, required=True, help="JSON file for what training cost (time, memory)")
    parser.add_argument("--state", type=Path, required=True,
                        help="scratch file with the last completed epoch's training state (run.resume continues from it)")
    args = parser.parse_args(argv)
    params = load_params(args.params, stage="train")
    if params.train.launcher != "python" and "WORLD_SIZE" not in os.environ:
        launched = subprocess.run([*shlex.split(params.train.launcher), sys.argv[0], *sys.argv[1:]])
        sys.exit(launched.returncode)
    from vqalab.models.registry import chosen_family_config
    from vqalab.models.sources import check_pretrained_sources, family_sources

    family = chosen_family_config(params)  # typed first: a wrong value fails before any import of torch
    check_pretrained_sources(family_sources(family))
    from dvclive import Live

    import vqalab
    from vqalab.data.dataset import ProcessedData
    from vqalab.data.features import CachedFeatures
    from vqalab.evaluation.blind import BlindBaseline
    from vqalab.io import digest, write_json
    from vqalab.models.card import model_card
    from vqalab.models.checkpoint import save_checkpoint
    from vqalab.pipeline.train import best_epoch_summary, train_model, validation_figures
    from vqalab.runtime import resolve_device
    from vqalab.training.distributed import is_main_process

    device = resolve_device(params.train.device)
    data, features, blind = ProcessedData.load(args.data), CachedFeatures.load(args.features), BlindBaseline.load(args.blind)
    # What the run depends on: a saved state made from anything else is not resumed.
    fingerprint = {"params": params.tracked(), "data": digest(args.data), "features": digest(args.features),
                   "blind": digest(args.blind),
                   "code": {"vqalab": vqalab.__version__, "source": digest(Path(vqalab.__file__).parent, pattern="*.py")}}
    args.state.parent.mkdir(parents=True, exist_ok=True)
    train = dict(device=device, state_path=args.state, fingerprint=fingerprint, where=args.data)
    if not is_main_process():
        # The other processes of a multi-process launch train their share of each batch and write nothing.
        train_model(params, data, features, blind, **train)
        return
    with Live(dir=str(args.live), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        def log_epoch(epoch: int, metrics: dict) -> None:
            live.step = epoch  # the curves' x is the epoch; 0 is the untrained model where it is validated
            for name, value in metrics.items():
                live.log_metric(name, value)

        trained = train_model(params, data, features, blind, on_epoch_end=log_epoch, **train)
        # The summary (`dvc exp show`, `dvc metrics diff`) is the kept epoch's, not the last one's:
        # its validation figures, not its timing (which differs in every run).
        live.summary = best_epoch_summary(trained.result)
        live.step = trained.result.best_epoch
    figures = validation_figures(trained.model, data, features, blind, device=device, batch_size=params.train.batch_size)
    pretrained = save_checkpoint(trained.model, args.out, info=trained.info,
                                 card=lambda meta: model_card(trained.model, meta, figures))
    write_json(args.cost, {**trained.cost, "checkpoint_mb": sum(f.stat().st_size for f in args.out.rglob("*")
                                                                  if f.is_file()) / 2**20,
                           "pretrained_parts": len(pretrained)})
    args.state.unlink(missing_ok=True)  # the run is complete: a rerun starts afresh


if __name__ == "__main__":
    run_stage(main)
