"""Multi-process data-parallel training through Hugging Face Accelerate (DDP).

``accelerate launch --num_processes N stages/train.py ...`` (or ``run.launcher`` in params.yaml)
starts N copies of the same train stage. Each copy sees ``WORLD_SIZE`` and ``RANK`` in its
environment; the training loop then wraps the model in DDP and shards every batch across the
processes. ``model.batch_size`` stays the *global* batch: each process gets batch_size / N of it,
so the optimisation (learning rate, schedule, number of steps) is the same for any N. A single
process never touches Accelerate: the plain loop stays exactly as it is.
"""

from __future__ import annotations

import os

import torch
from torch import nn
from torch.utils.data import DataLoader


def launched_processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Only the main process logs, saves training state and writes the checkpoint."""
    return int(os.environ.get("RANK", "0")) == 0


def prepare_data_parallel(model: nn.Module, loader: DataLoader, *, device: torch.device, global_batch_size: int):
    """(accelerator, DDP-wrapped model, sharded loader) for a multi-process launch."""
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.utils import DistributedDataParallelKwargs

    accelerator = Accelerator(
        cpu=device.type == "cpu",
        # The loader's batch is the global batch, split across the processes.
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # Parts a family leaves unused in its loss (e.g. a text encoder's pooler) get no gradient.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    if global_batch_size % accelerator.num_processes:
        raise ValueError(f"params: model.batch_size = {global_batch_size} is the global batch and must divide "
                         f"evenly over {accelerator.num_processes} processes")
    wrapped, loader = accelerator.prepare(model, loader)
    return accelerator, wrapped, loader
