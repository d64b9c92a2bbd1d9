"""What every model family provides, so the training loop and evaluation never ask which runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass
class ModelOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class VQAModel(nn.Module):
    """Interface of a family's model.

    - ``collate(items)``: a list of ``VQADataset`` items -> a batch dict of tensors (the
      family's tokenisation and image normalisation live here).
    - ``forward(batch)`` -> ``ModelOutput`` with ``loss`` when the batch carries labels.
    - ``predict(batch, top_k)`` -> for each question, the ``top_k`` (answer, score) pairs.
    - ``param_groups()``: optimiser parameter groups with their learning rates.
    - ``save_extra(directory)`` / ``from_saved(directory, config, answers)``: what a checkpoint
      needs beyond the state dict to rebuild the architecture without network.
    """

    family: str

    def collate(self, items: list[dict]) -> dict:
        raise NotImplementedError

    def predict(self, batch: dict, top_k: int = 1) -> list[list[tuple[str, float]]]:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        raise NotImplementedError

    def save_extra(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def from_saved(cls, directory: Path, config, answers: list[str]) -> "VQAModel":
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        return {
            "trainable_params": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "total_params": sum(p.numel() for p in self.parameters()),
        }
