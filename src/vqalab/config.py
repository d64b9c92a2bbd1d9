"""``params.yaml`` validated once into typed objects.

Every stage calls ``load_params`` first, so a typo or an impossible value fails in a second,
with the parameter's name and the allowed values, before any data is read or model built.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("tiny", "paper")

log = logging.getLogger(__name__)


def from_mapping(cls: type, mapping: Any, where: str):
    """Build dataclass ``cls`` from a params mapping; errors name ``where.key``."""
    if not isinstance(mapping, dict):
        raise ValueError(f"params: {where} must be a mapping, got {mapping!r}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ValueError(f"params: unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; allowed: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in known.items():
        if name not in mapping:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"params: {where}.{name} is missing")
            continue
        values[name] = _check_type(mapping[name], hints[name], f"{where}.{name}")
    try:
        return cls(**values)
    except ValueError as err:
        raise ValueError(f"params: {where}: {err}") from None


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        concrete = [o for o in options if o is not type(None)]
        if len(concrete) == 1:  # X | None: X's own message says what is wrong
            return _check_type(value, concrete[0], where)
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_type(value, option, where)
            except ValueError:
                pass
        raise ValueError(f"params: {where} = {value!r} should be {hint}")
    if dataclasses.is_dataclass(hint):
        return from_mapping(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"params: {where} must be a mapping, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ValueError(f"params: {where} must be a list, got {value!r}")
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        return tuple(_check_type(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 (PyYAML) reads 5e-05, as `dvc exp run -S lr=5e-5` writes it, as text.
        try:
            return float(value)
        except ValueError:
            pass
    if hint is Any or (isinstance(hint, type) and isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        return value
    raise ValueError(f"params: {where} = {value!r} should be of type {getattr(hint, '__name__', hint)}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class DownloadParams:
    # Keep only the first N images of each split (and their questions): for smoke runs.
    max_images_per_split: int | None = None
    # error: stop at the first bad record, naming it; skip: skip bad records and count them.
    on_bad_record: str = "error"

    def __post_init__(self) -> None:
        _require(self.max_images_per_split is None or self.max_images_per_split > 0,
                 f"max_images_per_split must be a positive integer or null, got {self.max_images_per_split}")
        _require(self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}")


@dataclass(frozen=True)
class PreprocessParams:
    val_fraction: float = 0.1
    min_answer_count: int = 1

    def __post_init__(self) -> None:
        _require(0.0 < self.val_fraction < 1.0, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        _require(self.min_answer_count >= 1, f"min_answer_count must be >= 1, got {self.min_answer_count}")


@dataclass(frozen=True)
class TrainParams:
    max_epochs: int = 10
    patience: int = 2
    batch_size: int = 64
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    grad_clip: float | None = 1.0
    device: str = "auto"
    # Stop once validation accuracy reaches this (null: run until patience or max_epochs).
    target_val_accuracy: float | None = None
    # Continue an interrupted run from its last completed epoch (its saved training state).
    resume: bool = False
    # auto | fp32 | bf16 | fp16: mixed precision (autocast; fp16 adds a gradient scaler).
    precision: str = "auto"
    # The command that starts the train stage (dvc.yaml's cmd): python, or e.g.
    # "accelerate launch --num_processes 4" for data-parallel training on 4 GPUs.
    launcher: str = "python"

    def __post_init__(self) -> None:
        _require(self.max_epochs >= 1, f"max_epochs must be >= 1, got {self.max_epochs}")
        _require(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _require(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _require(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or null, got {self.grad_clip}")
        _require(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
                 f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        _require(bool(self.launcher.strip()), "launcher must be a command, e.g. python or accelerate launch ...")
        _require(self.precision in ("auto", "fp32", "bf16", "fp16"),
                 f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        _require(self.target_val_accuracy is None or 0 < self.target_val_accuracy <= 1,
                 f"target_val_accuracy must be in (0, 1] or null, got {self.target_val_accuracy}")


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = 256
    # SBERT scorer per profile: a hub id, a local folder, or packaged:<name>.
    sbert_model: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        missing = [p for p in PROFILES if p not in self.sbert_model]
        _require(not missing, f"sbert_model needs an entry for profile(s) {missing}")


@dataclass(frozen=True)
class ReportParams:
    # The error gallery's row cap: wrong answers first; keeps the page a few MB on large test sets.
    gallery_max_rows: int = 2000

    def __post_init__(self) -> None:
        _require(self.gallery_max_rows >= 1, f"gallery_max_rows must be >= 1, got {self.gallery_max_rows}")


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


# Sections a data set's recipe may set (``recipes.<dataset>``): everything but the run's choices.
RECIPE_SECTIONS = ("preprocess", "train", "evaluate")


def apply_recipe(raw: dict, dataset: str, families) -> dict:
    """``raw`` with ``recipes.<dataset>`` merged over it, key by key.

    A recipe holds the settings a kind of data needs (image size, schedule, regularisation), so
    ``dvc exp run -S dataset=vqa_rad`` takes them with no other change. It may only set parameters
    that exist in the sections above it, so a typo fails instead of being ignored.
    """
    recipes = raw.get("recipes") or {}
    if not isinstance(recipes, dict):
        raise ValueError("params: recipes must be a mapping of data set -> settings")
    recipe = recipes.get(dataset) or {}
    if not isinstance(recipe, dict):
        raise ValueError(f"params: recipes.{dataset} must be a mapping of settings, got {recipe!r}")
    allowed = (*RECIPE_SECTIONS, *families)
    for section in recipe:
        if section not in allowed:
            raise ValueError(f"params: recipes.{dataset}.{section} cannot be set by a recipe; it may set {sorted(allowed)}")
    merged = _merge(raw, recipe, f"recipes.{dataset}")
    if recipe:
        log.info("recipes.%s sets %s (they win over the sections' values for this data set)", dataset,
                 ", ".join(f"{k} = {v!r}" for k, v in _flatten(recipe)))
    return merged


def _flatten(mapping: dict, prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _merge(base: dict, override: dict, where: str, section: str = "") -> dict:
    merged = dict(base)
    for key, value in override.items():
        target = f"{section}.{key}" if section else key
        if key not in base:
            raise ValueError(f"params: {where}.{key} sets {target}, which is not a parameter; "
                             f"{section or 'params.yaml'} holds {sorted(base)}")
        if isinstance(value, dict) and isinstance(base[key], dict):
            merged[key] = _merge(base[key], value, f"{where}.{key}", target)
        else:
            merged[key] = value
    return merged


def load_params(path: str | Path = "params.yaml") -> Params:
    # Imported here so that importing vqalab.config stays light for tools that only read params.
    from vqalab.data.registry import DATASETS, get_dataset
    from vqalab.models.registry import FAMILIES, get_family

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: run the stages from the project root") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a mapping of parameters")

    def choice(key: str, choices) -> str:
        value = raw.get(key)
        if value not in choices:
            raise ValueError(f"params: {key} = {value!r} is not one of {sorted(choices)}")
        return value

    dataset = choice("dataset", DATASETS)
    model = choice("model", FAMILIES)
    raw = apply_recipe(raw, dataset, FAMILIES)
    profile = choice("profile", PROFILES)
    seed = raw.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"params: seed must be a non-negative integer, got {seed!r}")
    family = get_family(model)
    section = raw.get(model)
    if not isinstance(section, dict) or profile not in section:
        raise ValueError(f"params: section {model}.{profile} is missing; it holds the {model} settings for profile {profile}")
    dataset_sections = raw.get("datasets") or {}
    return Params(
        dataset=dataset,
        model=model,
        profile=profile,
        seed=seed,
        download=from_mapping(DownloadParams, raw.get("download", {}), "download"),
        preprocess=from_mapping(PreprocessParams, raw.get("preprocess", {}), "preprocess"),
        train=from_mapping(TrainParams, raw.get("train", {}), "train"),
        evaluate=from_mapping(EvaluateParams, raw.get("evaluate", {}), "evaluate"),
        report=from_mapping(ReportParams, raw.get("report", {}), "report"),
        dataset_config=from_mapping(get_dataset(dataset).config_class, dataset_sections.get(dataset) or {},
                                    f"datasets.{dataset}"),
        family=from_mapping(family.config_class, section[profile], f"{model}.{profile}"),
    )
