"""LoRA for any family: one function, driven by the ``lora`` section of a family's params."""

from __future__ import annotations

from torch import nn

from vqalab.models.family_configs import LoraSettings


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
