"""The whole of params.yaml, validated into typed objects, and what each stage reads of it.

The params stage calls ``load_params`` first: a typo or an impossible value fails in a second, with
the parameter's name and the allowed values, before any data is read or model built. It merges the
chosen data set's recipe over the sections, and writes each stage's share (``stage_values``) to
data/params/<stage>.json, which the stage reads (``vqalab.config.StageParams``) and depends on.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vqalab.config import (PROFILES, RUN_CONTROLS, DownloadParams, EvaluateParams, PreprocessParams, ReportParams,
                           TrainParams, flatten, from_mapping)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Params:
    dataset: str
    model: str
    profile: str
    seed: int
    download: DownloadParams
    preprocess: PreprocessParams
    train: TrainParams
    evaluate: EvaluateParams
    report: ReportParams
    dataset_config: Any  # the chosen data set's config (a dataclass of the data set module)
    family: Any  # the chosen family's config for the chosen profile (a dataclass of the family)

    @property
    def sbert_model(self) -> str:
        return self.evaluate.sbert_model[self.profile]

    @property
    def encoders(self) -> dict:
        """What the features stage needs: which encoders are frozen and what their cached outputs
        depend on (``frozen``, with the seed of a random-init one), and the config fields that
        build them (``config``). A new learning rate changes neither, so features are kept."""
        from vqalab.models.registry import get_family

        family = get_family(self.model).model_class
        return {"frozen": family.feature_spec(self.family, seed=self.seed), "config": family.feature_config(self.family)}



# Sections a data set's recipe may set (``recipes.<dataset>``): everything but the run's choices.
RECIPE_SECTIONS = ("preprocess", "train", "evaluate")
# The recipe of every data set, under its own (``recipes.<dataset>``).
DEFAULT_RECIPE = "default"


def apply_recipe(raw: dict, dataset: str, families, datasets) -> dict:
    """``raw`` with the recipe of ``dataset`` filled in where params.yaml leaves a value empty.

    A recipe holds the settings a kind of data needs (image size, schedule, regularisation), so
    ``dvc exp run -S dataset=vqa_rad`` takes them with no other change: ``recipes.default`` (small
    real data sets) with ``recipes.<dataset>`` merged over it. A recipe fills only the values that
    params.yaml leaves empty (null); a value written in its section - by hand or by
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
        if node[leaf] is None:
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
    """params.yaml validated, with the chosen data set's recipe merged over it.

    ``overrides`` (nested as params.yaml, e.g. ``{"train": {"precision": "bf16"}}``) are merged
    over the file's values, so they win over the recipe's - as ``dvc exp run -S`` would set them;
    a key params.yaml lacks fails, naming it. The benchmarks express each strategy this way, so a
    strategy is a set of parameter values, not a model assembled by hand.
    """
    # Imported here: a family or data set module is imported only when it is chosen.
    from vqalab.data.registry import DATASETS, get_dataset
    from vqalab.models.registry import FAMILIES, get_family

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
    family = get_family(model)
    section = raw.get(model)
    if not isinstance(section, dict) or profile not in section:
        raise ValueError(f"params: section {model}.{profile} is missing; it holds the {model} settings for profile {profile}")
    dataset_sections = raw.get("datasets") or {}
    family_config = from_mapping(family.config_class, section[profile], f"{model}.{profile}")
    train = from_mapping(TrainParams, raw.get("train", {}), "train")
    if family_config.batch_size is not None:  # every family's config has it; checked once, here
        if family_config.batch_size < 1:
            raise ValueError(f"params: {model}.{profile}.batch_size must be >= 1 or null, got {family_config.batch_size}")
        log.info("%s.%s.batch_size = %d replaces train.batch_size = %d", model, profile, family_config.batch_size,
                 train.batch_size)
        train = dataclasses.replace(train, batch_size=family_config.batch_size)
        object.__setattr__(train, "section", "train")
    return Params(
        dataset=dataset,
        model=model,
        profile=profile,
        seed=seed,
        download=from_mapping(DownloadParams, raw.get("download", {}), "download"),
        preprocess=from_mapping(PreprocessParams, raw.get("preprocess", {}), "preprocess"),
        train=train,
        evaluate=from_mapping(EvaluateParams, raw.get("evaluate", {}), "evaluate"),
        report=from_mapping(ReportParams, raw.get("report", {}), "report"),
        dataset_config=from_mapping(get_dataset(dataset).config_class, dataset_sections.get(dataset) or {},
                                    f"datasets.{dataset}"),
        family=family_config,
    )


# What each DVC stage reads, as dotted names of ``Params`` (``family`` is the chosen family's
# section for the chosen profile and ``dataset_config`` the chosen data set's, both after the
# recipe; ``sbert_model`` the chosen profile's scorer). The params stage writes the values of each
# stage's parameters to data/params/<stage>.json, which is what that stage depends on in dvc.yaml,
# and every stage reads its parameters from that file (``StageParams``), so a stage's
# dependencies cannot miss a parameter it reads.
STAGE_PARAMS = {
    "download": ("dataset", "dataset_config", "download"),
    "preprocess": ("dataset", "seed", "preprocess", "family.image_size", "family.resize"),
    "features": ("model", "profile", "encoders", "train.device"),
    "train": ("dataset", "model", "profile", "seed", "family", "train"),
    "evaluate": ("dataset", "profile", "dataset_config", "download.max_images_per_split", "evaluate.batch_size",
                 "sbert_model", "train.device"),
    "report": ("report",),
}
def stage_values(params: Params, stage: str) -> dict[str, Any]:
    """The values of the parameters ``stage``'s outputs depend on, nested as in params.yaml
    (``family.image_size`` -> {"family": {"image_size": ...}}): its data/params/<stage>.json."""
    values: dict[str, Any] = {}
    for name in STAGE_PARAMS[stage]:
        value, node, (*parents, leaf) = params, values, name.split(".")
        for part in name.split("."):
            value = getattr(value, part)
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = plain(value)
    if "train" in values:
        values["train"] = {k: v for k, v in values["train"].items() if k not in RUN_CONTROLS}
    return values


def plain(value: Any) -> Any:
    """``value`` as JSON data: dataclasses become mappings, tuples lists."""
    if dataclasses.is_dataclass(value):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
