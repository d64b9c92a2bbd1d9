"""Check, before any work, that every pretrained model a run needs can be had.

A stage that loads pretrained models calls ``check_pretrained_sources`` first, with what it loads:
the chosen family's (its config's ``pretrained_sources``, by ``family_sources``) and the SBERT
scorer. Each is looked for - a packaged model, a local folder or file, the Hugging Face cache, the
hub, torchvision's cache or its download server - and every one that cannot be had is reported at
once, by the parameter that names it.
"""

from __future__ import annotations

from pathlib import Path

from vqalab.pretrained import (PACKAGED_PREFIX, hub_offline, hub_probe_url, hub_reachable, how_to_get,
                                      resolve_pretrained)

TORCHVISION_PREFIX = "torchvision:"


def family_sources(family_config) -> dict[str, str]:
    """{parameter: pretrained source} of a family config."""
    return {f"model.{field}": name for field, name in family_config.pretrained_sources().items()}


def check_pretrained_sources(sources: dict[str, str]) -> None:
    """Fails, naming every parameter of ``sources`` ({parameter: source}) whose model cannot be had."""
    problems = [f"{param} = {name!r}: {why}" for param, name in sources.items()
                if (why := source_problem(name, param)) is not None]
    if problems:
        raise OSError(f"{len(problems)} pretrained model(s) of this run cannot be had here:\n  - " + "\n  - ".join(problems))


def source_problem(name: str, param: str) -> str | None:
    """None when ``name`` can be loaded here, else why not and what to do."""
    if name.startswith(PACKAGED_PREFIX):
        try:
            resolve_pretrained(name)
        except (ValueError, ImportError) as err:
            return f"{err}"
        return None
    if name.startswith(TORCHVISION_PREFIX):
        return torchvision_weights_problem(name[len(TORCHVISION_PREFIX):], param)
    if Path(name).exists():
        return None
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        return "no such file or folder (a hub id has the form owner/name)"
    return hub_problem(name, param)


def hub_problem(repo_id: str, param: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return None
    if hub_offline():
        return f"not in the Hugging Face cache. {how_to_get(repo_id, param)}"
    if not hub_reachable(hub_probe_url()):
        return f"the Hugging Face hub is out of reach and it is not in the cache. {how_to_get(repo_id, param)}"
    return None


def torchvision_weights_problem(architecture: str, param: str) -> str | None:
    import torch
    import torchvision

    url = torchvision.models.get_model_weights(architecture).DEFAULT.url
    if (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file() or hub_reachable(url):
        return None
    return (f"torchvision's ImageNet weights for {architecture} are not in its cache ({torch.hub.get_dir()}) and "
            f"{url} is out of reach: save the state dict where there is network and set {param} to that file")
