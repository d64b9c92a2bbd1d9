"""The parameters of a run: params.yaml validated into typed objects, the data set's recipe applied.

The params stage calls ``load_params`` first: a typo or an impossible value fails in a second, with
the parameter's name and the allowed values, before any data is read or model built. It writes
every value the run uses (``Params.values``: recipes applied, the chosen data set's and family's
sections, the SBERT scorer of the profile) to data/params/resolved.json, under ``resolved``. Every
other stage reads that file back (``Params.read(path, stage=...)``), typed as ``load_params`` types
it, and may read only the parameters ``STAGE_PARAMS`` gives it - which dvc.yaml lists as the
stage's ``params`` - so DVC reruns a stage exactly when a value it reads changes, and
``dvc params diff`` / ``dvc exp show`` list every value a run used, including the recipe's.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from vqalab.config import (PROFILES, RECIPE, RUN_CONTROLS, DownloadParams, EvaluateParams, PreprocessParams,
                           ReportParams, TrainParams, flatten, from_mapping)

log = logging.getLogger(__name__)

# The resolved file's root key: its values show in `dvc exp show` as resolved.<name>, apart from
# params.yaml's own.
RESOLVED_ROOT = "resolved"
# Sections a data set's recipe may set (``recipes.<dataset>``), besides the families': everything
# but the run's choices.
RECIPE_SECTIONS = ("preprocess", "train", "evaluate")
# The recipe of every data set, under its own (``recipes.<dataset>``).
DEFAULT_RECIPE = "default"

# What each DVC stage reads, as dotted names of ``Params`` (``family``: the chosen family's section
# for the chosen profile, ``dataset_config``: the chosen data set's, ``sbert_model``: the chosen
# profile's scorer, ``encoders``: what the frozen encoders' cached outputs depend on).
STAGE_PARAMS = {
    "download": ("dataset", "dataset_config", "download"),
    "preprocess": ("dataset", "seed", "preprocess", "family.image_size", "family.resize"),
    "features": ("model", "profile", "encoders", "train.device"),
    "train": ("dataset", "model", "profile", "seed", "family", "train"),
    "evaluate": ("evaluate.batch_size", "sbert_model", "train.device"),
    "report": ("report",),
}


def stage_dependencies(stage: str) -> list[str]:
    """The parameters a stage's outputs depend on, as dvc.yaml lists them: what it reads, but for
    ``RUN_CONTROLS`` (how the train stage runs, not what it makes: changing them retrains nothing)."""
    names = []
    for name in STAGE_PARAMS[stage]:
        if name == "train":
            names += [f"train.{f.name}" for f in dataclasses.fields(TrainParams) if f.name not in RUN_CONTROLS]
        else:
            names.append(name)
    return [f"{RESOLVED_ROOT}.{name}" for name in names]


def _family_config(value: dict, values: dict):
    from vqalab.models.registry import family_config

    return family_config(values["model"], values["profile"], value)


def _dataset_config(value: dict, values: dict):
    from vqalab.data.registry import dataset_config

    return dataset_config(values["dataset"], value)


# How a resolved value becomes its typed object (names not here are plain values: strings, the seed,
# the derived ``encoders`` mapping).
TYPED = {
    "download": lambda value, values: from_mapping(DownloadParams, value, "download"),
    "preprocess": lambda value, values: from_mapping(PreprocessParams, value, "preprocess"),
    "train": lambda value, values: from_mapping(TrainParams, value, "train"),
    "evaluate": lambda value, values: from_mapping(EvaluateParams, value, "evaluate"),
    "report": lambda value, values: from_mapping(ReportParams, value, "report"),
    "family": _family_config,
    "dataset_config": _dataset_config,
}


class Params:
    """The parameters of one run, typed on access: ``p.train`` is a ``TrainParams``, ``p.family`` the
    chosen family's config, ``p.dataset_config`` the chosen data set's; ``dataset``, ``model``,
    ``profile``, ``seed``, ``sbert_model`` and ``encoders`` are plain values.

    Read for a ``stage``, only the parameters ``STAGE_PARAMS`` gives it can be read (a section of
    which it reads some fields gives those fields only, as plain values), so a stage cannot depend
    on a value DVC does not track for it. A family or data set module is imported only when its
    whole section is read.
    """

    def __init__(self, values: dict, *, stage: str | None = None, where: str = "params"):
        self._values, self._stage, self._where = values, stage, where
        self._typed: dict[str, Any] = {}

    @classmethod
    def read(cls, path: str | Path, *, stage: str) -> Params:
        """A stage's view of the resolved parameters the params stage wrote to ``path``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: the params stage writes it (dvc repro)")
        return cls(json.loads(path.read_text(encoding="utf-8"))[RESOLVED_ROOT], stage=stage, where=str(path))

    @property
    def values(self) -> dict:
        """Every value, as plain data (what data/params/resolved.json holds under ``resolved``)."""
        return copy.deepcopy(self._values)

    def dependency_values(self) -> dict[str, Any]:
        """{parameter: value} of what the stage's outputs depend on (``stage_dependencies``)."""
        values = {}
        for dotted in stage_dependencies(self._stage):
            node = self._values
            for part in dotted.split(".")[1:]:
                node = node[part]
            values[dotted] = node
        return values

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._values:
            raise AttributeError(f"the parameters hold no {name!r}")
        readable = STAGE_PARAMS[self._stage] if self._stage else (name,)
        if name in readable:
            return self._typed_value(name)
        fields = {r.split(".", 1)[1] for r in readable if r.startswith(f"{name}.")}
        if not fields:
            raise AttributeError(f"stage {self._stage} reads {name!r}, which is not among its parameters "
                                 f"{list(readable)} ({self._where}): add it to vqalab.params.STAGE_PARAMS")
        return _Fields(self._values[name], fields, where=f"{self._stage}: {name}")

    def _typed_value(self, name: str) -> Any:
        if name not in self._typed:
            value = self._values[name]
            self._typed[name] = TYPED[name](value, self._values) if name in TYPED else value
        return self._typed[name]


class _Fields:
    """The fields of a section that a stage reads (and no other), as the params stage validated them:
    plain values, so reading a family's image size does not import the family."""

    def __init__(self, section: dict, fields: set[str], *, where: str):
        self._section, self._fields, self._where = section, fields, where

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._fields:
            raise AttributeError(f"{self._where}.{name} is not among the stage's parameters (it reads "
                                 f"{sorted(self._fields)}): add it to vqalab.params.STAGE_PARAMS")
        return self._section[name]


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
    # Settings several families share are written once, at the top level (e.g. text_lora).
    shared = {name: raw[name] for name in getattr(family.config_class, "shared_params", ()) if name in raw}
    family_config = from_mapping(family.config_class, {**section[profile], **shared}, f"{model}.{profile}")
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
    encoders = {"frozen": family.model_class.feature_spec(family_config, seed=seed),
                "config": family.model_class.feature_config(family_config)}
    params = Params({"dataset": dataset, "model": model, "profile": profile, "seed": seed,
                     **{name: plain(value) for name, value in typed.items()},
                     "sbert_model": evaluate.sbert_model[profile], "encoders": plain(encoders)})
    params._typed.update(typed)
    return params


def plain(value: Any) -> Any:
    """``value`` as JSON data: dataclasses become mappings, tuples lists."""
    if dataclasses.is_dataclass(value):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
