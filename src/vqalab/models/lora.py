"""LoRA for any family: one function, driven by the ``lora`` section of a family's params."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("query", "value")

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"lora.r must be >= 1, got {self.r}")
        if self.alpha < 1:
            raise ValueError(f"lora.alpha must be >= 1, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module")


def apply_lora(module: nn.Module, settings: LoraSettings | None) -> nn.Module:
    """Freeze ``module`` and add LoRA adapters to its target modules; without settings, return it as is.

    The result is a peft model wrapping ``module``: only the adapters train. Rebuilding the same
    architecture and calling this with the same settings gives the same state-dict keys, which is
    how checkpoints reload.
    """
    if settings is None:
        return module
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), bias="none")
    try:
        return get_peft_model(module, config)
    except ValueError as err:  # peft names the missing targets; add the parameter to look at
        raise ValueError(f"lora.target_modules {list(settings.target_modules)}: {err}") from None
