"""params.yaml validated into the parameters of a run, the chosen data set's recipe applied.

The params stage calls ``load_params`` first: a typo or an impossible value fails in a second, with
the parameter's name and the allowed values, before any data is read or model built, and writes
the result (``vqalab.params.Params.values``) to data/params/resolved.json.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import yaml

from vqalab.config import (PROFILES, RECIPE, DownloadParams, EvaluateParams, PreprocessParams, ReportParams,
                           TrainParams, flatten, from_mapping)
from vqalab.data.registry import DATASETS, get_dataset
from vqalab.models.registry import FAMILIES, get_config_class
from vqalab.params import Params, plain

log = logging.getLogger(__name__)

# Sections a data set's recipe may set (``recipes.<dataset>``), besides the families': everything
# but the run's choices.
RECIPE_SECTIONS = ("preprocess", "train", "evaluate")
# The recipe of every data set, under its own (``recipes.<dataset>``).
DEFAULT_RECIPE = "default"


def apply_recipe(raw: dict, dataset: str, families, datasets) -> dict:
    """``raw`` with the recipe of ``dataset`` filled in where params.yaml says ``recipe``.

    A recipe holds the settings a kind of data needs (image size, schedule, regularisation), so
    ``dvc exp run -S dataset=vqa_rad`` takes them with no other change: ``recipes.default`` (small
    real data sets) with ``recipes.<dataset>`` merged over it. A recipe fills only the values that
    params.yaml leaves to it; a value written in its section - by hand or by
    ``dvc exp run -S train.max_epochs=4`` - wins over every recipe, and the log says so. A recipe may
    only set parameters that exist, so a typo fails instead of being ignored.
    """
    recipes = raw.get("recipes") or {}
    if not isinstance(recipes, dict):
        raise ValueError("params: recipes must be a mapping of data set -> settings")
    unknown = sorted(set(recipes) - {DEFAULT_RECIPE, *datasets})
    if unknown:
        raise ValueError(f"params: recipes.{unknown[0]} names no data set; recipes may be "
                         f"{sorted({DEFAULT_RECIPE, *datasets})}")
    allowed = (*RECIPE_SECTIONS, *families)
    chosen: dict[str, tuple[str, Any]] = {}  # dotted parameter -> (recipe name, value)
    for name in (DEFAULT_RECIPE, dataset):
        recipe = recipes.get(name) or {}
        if not isinstance(recipe, dict):
            raise ValueError(f"params: recipes.{name} must be a mapping of settings, got {recipe!r}")
        for section in recipe:
            if section not in allowed:
                raise ValueError(f"params: recipes.{name}.{section} cannot be set by a recipe; it may set {sorted(allowed)}")
        _check_keys(raw, recipe, f"recipes.{name}")
        chosen.update({key: (name, value) for key, value in flatten(recipe).items()})
    merged, filled, overridden = copy.deepcopy(raw), [], []
    for key, (name, value) in chosen.items():
        *parents, leaf = key.split(".")
        node = merged
        for part in parents:
            node = node[part]
        if node[leaf] == RECIPE:
            node[leaf] = value
            filled.append(f"{key}={value!r} ({name})")
        elif node[leaf] != value:
            overridden.append(f"{key}={node[leaf]!r} (recipes.{name}: {value!r})")
    log.info("recipes fill %s", ", ".join(filled) or "nothing")
    if overridden:
        log.info("params.yaml's own values win over the recipes: %s", ", ".join(overridden))
    return merged


def _check_keys(base: dict, override: dict, where: str, section: str = "") -> None:
    """Every key of ``override`` (a recipe) names a parameter of ``base`` (params.yaml)."""
    for key, value in override.items():
        target = f"{section}.{key}" if section else key
        if key not in base:
            raise ValueError(f"params: {where}.{key} sets {target}, which is not a parameter; "
                             f"{section or 'params.yaml'} holds {sorted(base)}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            _check_keys(base[key], value, f"{where}.{key}", target)


def merge_overrides(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged over it, nested mappings key by key (neither is changed)."""
    merged = dict(base)
    for key, value in override.items():
        both_mappings = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = merge_overrides(base[key], value) if both_mappings else value
    return merged


def load_params(path: str | Path = "params.yaml", overrides: dict | None = None) -> Params:
    """params.yaml validated, with the chosen data set's recipe applied.

    ``overrides`` (nested as params.yaml, e.g. ``{"train": {"precision": "bf16"}}``) are merged
    over the file's values, so they win over the recipe's - as ``dvc exp run -S`` would set them;
    a key params.yaml lacks fails, naming it. The benchmarks express each strategy this way, so a
    strategy is a set of parameter values, not a model assembled by hand.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: run the stages from the project root") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping of parameters")
    if overrides:  # as values written in params.yaml: they win over the recipe's
        _check_keys(raw, overrides, "overrides")
        raw = merge_overrides(raw, overrides)

    def choice(key: str, choices) -> str:
        value = raw.get(key)
        if value not in choices:
            raise ValueError(f"params: {key} = {value!r} is not one of {sorted(choices)}")
        return value

    dataset = choice("dataset", DATASETS)
    model = choice("model", FAMILIES)
    raw = apply_recipe(raw, dataset, FAMILIES, DATASETS)
    profile = choice("profile", PROFILES)
    seed = raw.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"params: seed must be a non-negative integer, got {seed!r}")
    config_class = get_config_class(model)
    section = raw.get(model)
    if not isinstance(section, dict) or profile not in section:
        raise ValueError(f"params: section {model}.{profile} is missing; it holds the {model} settings for profile {profile}")
    # Settings several families share are written once, at the top level (e.g. text_lora).
    shared = {name: raw[name] for name in getattr(config_class, "shared_params", ()) if name in raw}
    family_config = from_mapping(config_class, {**section[profile], **shared}, f"{model}.{profile}")
    train_section = dict(raw.get("train") or {})
    if "batch_size" in train_section:
        raise ValueError(f"params: train.batch_size is not a parameter: the training batch is {model}.{profile}.batch_size, "
                         f"beside the learning rates that go with it")
    train = from_mapping(TrainParams, {**train_section, "batch_size": family_config.batch_size}, "train")
    log.info("training batch: %d questions (%s.%s.batch_size)", train.batch_size, model, profile)
    evaluate = from_mapping(EvaluateParams, raw.get("evaluate", {}), "evaluate")
    dataset_config = from_mapping(get_dataset(dataset).config_class, (raw.get("datasets") or {}).get(dataset) or {},
                                  f"datasets.{dataset}")
    typed = {
        "download": from_mapping(DownloadParams, raw.get("download", {}), "download"),
        "preprocess": from_mapping(PreprocessParams, raw.get("preprocess", {}), "preprocess"),
        "train": train,
        "evaluate": evaluate,
        "report": from_mapping(ReportParams, raw.get("report", {}), "report"),
        "dataset_config": dataset_config,
        "family": family_config,
    }
    encoders = {"frozen": family_config.feature_spec(seed=seed), "config": family_config.feature_config()}
    return Params({"dataset": dataset, "model": model, "profile": profile, "seed": seed,
                   **{name: plain(value) for name, value in typed.items()},
                   "sbert_model": evaluate.sbert_model[profile], "encoders": plain(encoders)})
