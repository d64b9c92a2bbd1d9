"""Step validate: every section of the parameters typed as the stage that reads it types it, the
chosen data set's and family's configs included, so a wrong value fails naming its key before any
stage (or benchmark) runs; and the strategy group checked against the chosen family."""

from __future__ import annotations

from vqalab.data.registry import chosen_dataset_config
from vqalab.models.family_configs import FusionConfig
from vqalab.models.registry import CONFIG_CLASSES, chosen_family_config, get_config_class
from vqalab.params import ATTRIBUTE_KEYS, Params


def check_params(params: Params) -> None:
    """Type every section of ``params`` (read with no stage restriction); raise ``ValueError``
    naming the first wrong value."""
    for name in ATTRIBUTE_KEYS:  # each typed as the stage that reads it types it (train with the run section)
        getattr(params, name)
    check_strategy(params)
    chosen_family_config(params)
    chosen_dataset_config(params)


def check_strategy(params: Params) -> None:
    """conf/strategy/ sets which encoders of a fusion family train; another family trains as its own
    config says (ViLT and Qwen2-VL: model.lora) and takes strategy=default only."""
    if params.strategy == "default" or issubclass(get_config_class(params.model), FusionConfig):
        return
    fusion = [name for name, config_class in CONFIG_CLASSES.items() if issubclass(config_class, FusionConfig)]
    raise ValueError(f"params: strategy={params.strategy} sets which encoders of a fusion family "
                     f"({', '.join(fusion)}) train (conf/strategy/); model={params.model} takes strategy=default "
                     f"and its own model.lora")
