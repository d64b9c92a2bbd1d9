"""Checkpoints: a folder with the weights, the config they were built from and the answers.

Layout: ``checkpoint.json`` (family, config, answers, training summary), ``model.safetensors``
(the state dict) and whatever the family needs to rebuild its architecture offline
(``save_extra``: e.g. the text encoder's config and tokenizer). LoRA adapters are also written as
peft writes them, ``adapters/<part>/`` (``adapter_config.json``, ``adapter_model.safetensors``), so
``PeftModel.from_pretrained(base, "adapters/<part>")`` loads them onto the pretrained base.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from vqalab import __version__
from vqalab.config import from_mapping
from vqalab.io import atomic_path, read_json, write_json
from vqalab.models.registry import get_family

# torch is imported only where weights are saved or loaded: ``vqalab predict`` checks that a model
# folder holds CHECKPOINT_FILE before it imports torch, so a wrong path is reported at once.
if TYPE_CHECKING:
    from vqalab.models.base import VQAModel

CHECKPOINT_FILE = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"
ADAPTERS_DIR = "adapters"


def save_checkpoint(model: VQAModel, directory: str | Path, *, info: dict) -> None:
    """Write the checkpoint under a temporary name and rename it into place."""
    from safetensors.torch import save_file

    with atomic_path(directory, is_dir=True) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.checkpoint_state().items()}
        save_file(state, tmp / WEIGHTS_FILE)
        for part, adapted in lora_parts(model).items():
            adapted.save_pretrained(tmp / ADAPTERS_DIR / part)
        model.save_extra(tmp)
        write_json(tmp / CHECKPOINT_FILE, {
            "family": model.family,
            "config": asdict(model.config),
            "answers": model.answers,
            "vqalab_version": __version__,
            **info,
        })


def lora_parts(model: VQAModel) -> dict:
    """{part name: peft model} of the model's parts that carry LoRA adapters (``apply_lora``)."""
    from peft import PeftModel

    return {name: child for name, child in model.named_children() if isinstance(child, PeftModel)}


def load_checkpoint(directory: str | Path) -> tuple[VQAModel, dict]:
    """Rebuild a model of any family from its checkpoint folder; returns (model, checkpoint info)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    if not (directory / CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"{directory} is not a vqalab checkpoint (no {CHECKPOINT_FILE}); train a model first")
    meta = read_json(directory / CHECKPOINT_FILE)
    family = get_family(meta["family"])
    config = from_mapping(family.config_class, meta["config"], f"{directory / CHECKPOINT_FILE}:config")
    model = family.model_class.from_saved(directory, config, meta["answers"])
    model.load_checkpoint_state(load_file(directory / WEIGHTS_FILE))
    model.eval()
    return model, meta
