"""Checkpoints: a folder that holds what training made, and names what it was built on.

Layout: ``checkpoint.json`` (family, config, answers, training summary, and ``pretrained``: each
pretrained part the model was built on, by the parameter that names its source, the source and a
content hash), ``model.safetensors`` (every tensor that is not its pretrained source's, unchanged:
what was trained, and parts that exist nowhere else such as a random-init tower), whatever the
family needs to rebuild its architecture offline (``save_extra``: e.g. the text encoder's config and
tokenizer) and ``README.md``, a Hugging Face model card. LoRA adapters are also written as peft
writes them, ``adapters/<part>/``, so ``PeftModel.from_pretrained(base, "adapters/<part>")`` loads
them onto the pretrained base.

A frozen encoder is not copied into every experiment: loading builds the model from its pretrained
sources (as training did), checks that each part's weights hash as recorded - a swapped or updated
source is refused, naming it - and loads the saved tensors over it. Nothing in the folder depends on
how fast training ran: retraining on the same machine gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
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
    import torch

    from vqalab.models.base import VQAModel

CHECKPOINT_FILE = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"
ADAPTERS_DIR = "adapters"
CARD_FILE = "README.md"
# The seed of the reference model a checkpoint is compared with (``source_tensors``): any seed but
# the training run's would do; a tensor drawn at random differs between the two, one loaded from a
# source does not.
REFERENCE_SEED = 20_250_101


def save_checkpoint(model: VQAModel, directory: str | Path, *, info: dict,
                    card: Callable[[dict], str] | None = None) -> dict:
    """Write the checkpoint under a temporary name and rename it into place; returns its
    ``pretrained`` record ({part: {param, source, sha256, tensors}}). ``card`` makes the model card
    from checkpoint.json's contents, as written."""
    from safetensors.torch import save_file

    from vqalab.models.base import tensors_digest

    state = model.state_dict()
    from_source = source_tensors(model, state)
    pretrained = {prefix: {**part, "sha256": tensors_digest({k: state[k] for k in names}), "tensors": len(names)}
                  for prefix, part in model.pretrained_parts().items() if (names := from_source.get(prefix))}
    skipped = {name for names in from_source.values() for name in names}
    with atomic_path(directory, is_dir=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items() if k not in skipped}, tmp / WEIGHTS_FILE)
        for part, adapted in lora_parts(model).items():
            adapted.save_pretrained(tmp / ADAPTERS_DIR / part)
        model.save_extra(tmp)
        write_json(tmp / CHECKPOINT_FILE, {"family": model.family, "config": asdict(model.config),
                                           "answers": model.answers, "vqalab_version": __version__,
                                           "pretrained": pretrained, **info})
        if card is not None:
            (tmp / CARD_FILE).write_text(card(read_json(tmp / CHECKPOINT_FILE)), encoding="utf-8")
    return pretrained


def source_tensors(model: VQAModel, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """{part prefix: the names of its tensors that are still its pretrained source's}, found by
    building the family anew from its sources (another seed, so nothing random can match)."""
    import torch

    parts = model.pretrained_parts()
    if not parts:
        return {}
    reference = build_from_sources(type(model), model.config, model.answers).state_dict()
    found: dict[str, list[str]] = {}
    for name, tensor in state.items():
        prefix = next((p for p in parts if name.startswith(p)), None)
        same = name in reference and reference[name].shape == tensor.shape and reference[name].dtype == tensor.dtype
        if prefix is not None and same and torch.equal(reference[name].cpu(), tensor.detach().cpu()):
            found.setdefault(prefix, []).append(name)
    return found


def build_from_sources(model_class: type[VQAModel], config, answers: list[str]) -> VQAModel:
    """The family built from its pretrained sources, its random parts drawn from REFERENCE_SEED
    (without moving the caller's random state): what a checkpoint is saved against and loaded onto."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(REFERENCE_SEED)
        return model_class.build(config, answers)


def lora_parts(model: VQAModel) -> dict:
    """{part name: peft model} of the model's parts that carry LoRA adapters (``apply_lora``)."""
    from peft import PeftModel

    return {name: child for name, child in model.named_children() if isinstance(child, PeftModel)}


def load_checkpoint(directory: str | Path) -> tuple[VQAModel, dict]:
    """Rebuild a model of any family from its checkpoint folder; returns (model, checkpoint info).
    Its pretrained parts come from their sources and must hash as recorded."""
    from safetensors.torch import load_file

    from vqalab.models.base import tensors_digest

    directory = Path(directory)
    if not (directory / CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"{directory} is not a vqalab checkpoint (no {CHECKPOINT_FILE}); train a model first")
    meta = read_json(directory / CHECKPOINT_FILE)
    if "pretrained" not in meta:
        raise ValueError(f"{directory} was saved by an older vqalab, which copied the pretrained encoders into every "
                         f"checkpoint: retrain it (dvc repro -s train)")
    family = get_family(meta["family"])
    config = from_mapping(family.config_class, meta["config"], f"{directory / CHECKPOINT_FILE}:config")
    pretrained = meta["pretrained"]
    if pretrained:
        model = build_from_sources(family.model_class, config, meta["answers"])
    else:  # nothing comes from a source: the architecture is in the folder, no network needed
        model = family.model_class.from_saved(directory, config, meta["answers"])
    model.load_extra(directory)
    saved = load_file(directory / WEIGHTS_FILE)
    state = model.state_dict()
    for prefix, part in pretrained.items():
        names = [k for k in state if k.startswith(prefix) and k not in saved]
        found = tensors_digest({k: state[k] for k in names})
        if len(names) != part["tensors"] or found != part["sha256"]:
            raise ValueError(
                f"{directory}: {part['param']} = {part['source']!r} does not give the weights this model was trained on "
                f"({part['tensors']} tensors, sha256 {part['sha256'][:12]}... recorded; {len(names)} tensors, "
                f"{found[:12]}... found): point {part['param']} at the weights it was trained with "
                f"(checkpoint.json's versions say which libraries made it), or retrain (dvc repro -s train)")
    expected = {k for k in state if not any(k.startswith(p) for p in pretrained)} | set(saved)
    missing, unexpected = sorted(expected - set(saved)), sorted(set(saved) - set(state))
    if missing or unexpected:
        raise ValueError(f"{directory / WEIGHTS_FILE} does not match the {meta['family']} model: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(saved, strict=False)
    model.eval()
    return model, meta
