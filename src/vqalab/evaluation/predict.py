"""Batched prediction for any family."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset

from vqalab.data.dataset import IndexedBatches, VQADataset
from vqalab.progress import progress as progress_bar
from vqalab.runtime import to_device

if TYPE_CHECKING:  # evaluation reads models through their interface only; the models never import it
    from vqalab.models.base import VQAModel


@torch.no_grad()
def predict_dataset(model: VQAModel, dataset: Dataset, *, batch_size: int, device: torch.device,
                    top_k: int = 1, mode: str | None = None, desc: str = "predict",
                    progress: bool = True) -> list[list[tuple[str, float]]]:
    """Return, for every item of ``dataset`` (items as ``VQADataset`` makes them) in order, its
    ``top_k`` (answer, score) pairs (``mode``: one of the model's prediction modes; its default when None)."""
    model.eval()
    if isinstance(dataset, VQADataset) and dataset.fully_cached():
        loader = IndexedBatches(dataset, batch_size=batch_size, device=device)
        order = list(range(len(dataset)))
    else:
        # Questions of similar length share a batch, so a batch pads little (a generative model
        # decodes every padded position); the outputs are put back in the data set's order.
        order = length_order(dataset)
        loader = DataLoader(dataset, batch_sampler=[order[i:i + batch_size] for i in range(0, len(order), batch_size)],
                            collate_fn=model.collate)
    outputs: list[list[tuple[str, float]]] = []
    for batch in progress_bar(loader, desc=desc, unit="batch", leave=False, enabled=progress):
        outputs.extend(model.predict(to_device(batch, device), top_k=top_k, mode=mode))
    in_order: list = [None] * len(outputs)
    for position, index in enumerate(order):
        in_order[index] = outputs[position]
    return in_order


def length_order(dataset: Dataset) -> list[int]:
    """Item indices by question length in characters (a tokenizer-free proxy for tokens), stable."""
    records = getattr(dataset, "records", None)
    if records is None:
        return list(range(len(dataset)))
    return sorted(range(len(records)), key=lambda i: len(records[i].question))
