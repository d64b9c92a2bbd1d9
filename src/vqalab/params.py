"""params.yaml - composed from conf/ by DVC - validated into the typed parameters of a run.

DVC composes params.yaml from the Hydra config folder conf/ (``hydra.enabled`` in .dvc/config):
``dvc exp run -S dataset=vqa_rad -S model.lr=0.001`` picks a data set and sets a value, and
params.yaml is the only parameter file DVC reads. Every stage calls ``load_params``, which

- types the sections the stage reads (``chosen_family_config`` and ``chosen_dataset_config`` the
  model and dataset sections), so a wrong value fails within a second of the first stage that reads
  it, naming the key and what it may be;
- checks that params.yaml is what conf/ composes for its choices (``check_composed``): a file
  edited by hand or left behind by a change to conf/ is refused, with the command to run; inside
  ``dvc exp run`` the differences are the run's ``-S`` values, and the log lists them;
- gives the stage only the parameters that dvc.yaml lists for it (``STAGE_PARAMS``), so a stage
  cannot depend on a value DVC does not track for it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from vqalab.config import (PROFILES, DownloadParams, EvaluateParams, PreprocessParams, ReportParams, RunControls,
                           TrainParams, check_positive_int, flatten, from_mapping)

log = logging.getLogger(__name__)

PARAMS_FILE = Path("params.yaml")
CONF_DIR = "conf"  # beside params.yaml; .dvc/config's hydra.config_dir (DVC's default)
CONFIG_NAME = "config"  # conf/config.yaml: the defaults list
# The config groups, and the key of params.yaml that records the option chosen in each.
GROUPS = {"dataset": "dataset.name", "model": "model.name", "profile": "profile", "strategy": "strategy"}
# Set by DVC in the environment of every stage of `dvc exp run` (queued or not).
EXPERIMENT_ENV = "DVC_EXP_BASELINE_REV"
# A key one side of a comparison lacks.
ABSENT = "<absent>"

# What each DVC stage reads, as keys of params.yaml; dvc.yaml lists exactly these as the stage's
# `params` (tests/test_stage_deps.py). A stage may read a whole section or single keys of one.
STAGE_PARAMS = {
    "download": ("dataset", "download"),
    "preprocess": ("dataset.name", "seed", "preprocess", "model.image_size", "model.resize"),
    "features": ("model", "seed", "train.device"),
    "blind": ("evaluate.sbert_model",),
    "train": ("dataset.name", "profile", "seed", "model", "train"),
    "evaluate": ("evaluate", "train.device"),
    "report": ("report",),
}
# Read but not listed: how the train stage runs (resumed, launched, compiled), not what it makes,
# so changing them retrains nothing.
UNTRACKED_PARAMS = {"train": ("run",)}
SECTIONS = ("dataset", "model", "profile", "strategy", "seed", "download", "preprocess", "train", "run", "evaluate",
            "report")


# The sections typed on access (``model`` and ``dataset`` are typed by their registries, which
# import the chosen family's or data set's config class only: ``chosen_family_config(params)``,
# ``chosen_dataset_config(params)``).
TYPED = {"download": DownloadParams, "preprocess": PreprocessParams, "evaluate": EvaluateParams,
         "report": ReportParams}
# Each attribute of ``Params`` and the key of params.yaml it reads (``train`` holds ``run``'s controls too).
ATTRIBUTE_KEYS = {"dataset": "dataset.name", "dataset_config": "dataset", "model": "model.name", "family": "model",
                  "profile": "profile", "strategy": "strategy", "seed": "seed", "download": "download",
                  "preprocess": "preprocess", "train": "train", "evaluate": "evaluate", "report": "report",
                  "sbert_model": "evaluate.sbert_model"}


class Params:
    """The parameters of one run (params.yaml's values), each section typed when it is read:
    ``p.train`` is a ``TrainParams``; ``p.family`` and ``p.dataset_config`` are the model and dataset
    sections less their names, which ``chosen_family_config`` and ``chosen_dataset_config`` type.

    Made for a ``stage``, it gives only what ``STAGE_PARAMS`` (and ``UNTRACKED_PARAMS``) list for
    it: a section of which the stage reads single keys gives those keys only, as plain values."""

    def __init__(self, values: dict, *, stage: str | None = None, where: str | Path = PARAMS_FILE):
        unknown = sorted(set(values) - set(SECTIONS))
        if unknown:
            raise ValueError(f"params: unknown section(s) {unknown} in {where}; it holds {list(SECTIONS)}")
        missing = [s for s in SECTIONS if s not in values]
        if missing:
            raise ValueError(f"params: {where} lacks {missing}: compose it from conf/ (vqalab compose)")
        self.values, self._stage, self._where = values, stage, where
        self._typed: dict[str, Any] = {}

    def tracked(self) -> dict[str, Any]:
        """{key: value} of what the stage's outputs depend on: the keys dvc.yaml lists for it."""
        return {key: _lookup(self.values, key) for key in STAGE_PARAMS[self._stage]}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in ATTRIBUTE_KEYS:
            raise AttributeError(f"the parameters hold no {name!r}")
        key = ATTRIBUTE_KEYS[name]
        readable = (*STAGE_PARAMS[self._stage], *UNTRACKED_PARAMS.get(self._stage, ())) if self._stage else (key,)
        if any(key == r or key.startswith(f"{r}.") for r in readable):
            return self._typed_value(name)
        parts = {r.split(".", 1)[1] for r in readable if r.startswith(f"{key}.")}
        if not parts:
            raise AttributeError(f"stage {self._stage} reads {key!r}, which is not among its parameters "
                                 f"{list(STAGE_PARAMS[self._stage])}: add it to vqalab.params.STAGE_PARAMS and dvc.yaml")
        return _Fields(_lookup(self.values, key), parts, where=f"{self._stage}: {key}")

    def _typed_value(self, name: str) -> Any:
        if name not in self._typed:
            self._typed[name] = self._typed_new(name)
        return self._typed[name]

    def _typed_new(self, name: str) -> Any:
        key = ATTRIBUTE_KEYS[name]
        value = _lookup(self.values, key)
        if name in TYPED:
            return from_mapping(TYPED[name], value, key)
        if name in ("family", "dataset_config"):
            if not isinstance(value, dict):
                raise ValueError(f"params: {key} must be a mapping, got {value!r}")
            return {k: v for k, v in value.items() if k != "name"}
        if name == "train":
            return train_params(self.values)
        if name == "sbert_model":
            return self.evaluate.sbert_model
        if name == "profile" and value not in PROFILES:
            raise ValueError(f"params: profile = {value!r} is not one of {list(PROFILES)}")
        if name == "seed" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"params: seed must be a non-negative integer, got {value!r}")
        if name in ("dataset", "model", "strategy") and not isinstance(value, str):
            raise ValueError(f"params: {key} must be a name, got {value!r}")
        return value


def train_params(values: dict) -> TrainParams:
    """The train section with the run section's controls and the family's batch size (model.batch_size,
    beside the learning rates that go with it), typed."""
    train = values["train"]
    if not isinstance(train, dict):
        raise ValueError(f"params: train must be a mapping, got {train!r}")
    if "batch_size" in train:
        raise ValueError("params: train.batch_size is not a parameter: the training batch is model.batch_size, "
                         "beside the learning rates that go with it")
    run = from_mapping(RunControls, values["run"], "run")
    batch_size = values["model"].get("batch_size") if isinstance(values["model"], dict) else None
    check_positive_int(batch_size, "params: model.batch_size")
    return from_mapping(TrainParams, {**train, **{f.name: getattr(run, f.name) for f in fields(run)},
                                      "batch_size": batch_size}, "train")


def _lookup(values: dict, key: str) -> Any:
    node = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"params: {key} is missing: compose params.yaml from conf/ (vqalab compose)")
        node = node[part]
    return node


class _Fields:
    """The fields of a section that a stage reads, and no other: attributes of a typed section
    (``params.train.device``), items of a mapping (``params.family["image_size"]``)."""

    def __init__(self, section: Any, fields_read: set[str], *, where: str):
        self._section, self._fields, self._where = section, fields_read, where

    def _field(self, name: str) -> Any:
        if name not in self._fields:
            raise AttributeError(f"{self._where}.{name} is not among the stage's parameters (it reads "
                                 f"{sorted(self._fields)}): add it to vqalab.params.STAGE_PARAMS and dvc.yaml")
        return self._section[name] if isinstance(self._section, dict) else getattr(self._section, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._field(name)

    def __getitem__(self, name: str) -> Any:
        return self._field(name)


def read_params(path: str | Path = PARAMS_FILE) -> dict:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: run from the project root (params.yaml is composed from conf/ "
                                f"by `dvc exp run` or `vqalab compose`)") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of parameters")
    return values


def load_params(path: str | Path = PARAMS_FILE, *, stage: str | None = None) -> Params:
    """params.yaml validated and checked against conf/ (beside it): what a stage reads first."""
    path = Path(path)
    values = read_params(path)
    params = Params(values, stage=stage, where=path)
    check_composed(values, conf_dir=path.parent / CONF_DIR, where=path)
    return params


def choices_of(values: dict) -> dict[str, str]:
    """{group: option} as params.yaml records them."""
    return {group: (values[key.split(".")[0]] or {}).get("name") if "." in key else values[key]
            for group, key in GROUPS.items()}


def composed_text(conf_dir: str | Path, overrides: list[str]) -> str:
    """params.yaml as DVC composes it from ``conf_dir`` with ``overrides`` (`dvc exp run` with its -S
    values: Hydra's compose, interpolations resolved, dumped by OmegaConf; tests/test_config.py checks
    that DVC's own function writes the same). Hydra, not DVC, so a machine without DVC composes too."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    conf_dir = Path(conf_dir)
    if not (conf_dir / f"{CONFIG_NAME}.yaml").is_file():
        raise FileNotFoundError(f"{conf_dir / CONFIG_NAME}.yaml not found: params.yaml is composed from it")
    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base=None):
            config = compose(config_name=CONFIG_NAME, overrides=list(overrides))
        OmegaConf.resolve(config)
    except Exception as err:  # noqa: BLE001 - Hydra's errors name the key, or the group and its options
        raise ValueError(f"conf/ does not compose with {' '.join(overrides) or 'its defaults'}: "
                         f"{' '.join(str(err).split())}") from None
    return OmegaConf.to_yaml(config)


def composed(conf_dir: str | Path, overrides: list[str]) -> dict:
    """``composed_text`` as values."""
    return yaml.safe_load(composed_text(conf_dir, overrides))


def composed_differences(values: dict, *, conf_dir: str | Path) -> dict[str, tuple]:
    """The values of params.yaml that differ from what ``conf_dir`` composes for its choices,
    ``{key: (in params.yaml, in conf/)}``: an experiment's -S values beside its choices."""
    choices = choices_of(values)
    expected = composed(conf_dir, [f"{group}={option}" for group, option in choices.items()])
    have, want = flatten(values), flatten(expected)
    return {key: (have.get(key, ABSENT), want.get(key, ABSENT))
            for key in sorted(set(have) | set(want)) if have.get(key, ABSENT) != want.get(key, ABSENT)}


def check_composed(values: dict, *, conf_dir: str | Path, where: str | Path = PARAMS_FILE) -> dict[str, tuple]:
    """``composed_differences``: inside `dvc exp run` they are the run's -S values and are logged;
    anywhere else params.yaml must be what conf/ composes, and this fails, naming each difference
    and the command to run."""
    differences = composed_differences(values, conf_dir=conf_dir)
    if not differences:
        return {}
    listed = "\n".join(f"  {key}: {ours!r} in {where}, {theirs!r} from conf/" for key, (ours, theirs) in differences.items())
    if os.environ.get(EXPERIMENT_ENV) and all(theirs != ABSENT for _, theirs in differences.values()):
        log.info("this experiment sets (dvc exp run -S):\n%s", listed)
        return differences
    chosen = " ".join(f"{group}={option}" for group, option in choices_of(values).items())
    set_values = " ".join(f"-S '{key}={yaml.safe_dump(ours, default_flow_style=True).strip().removesuffix('...').strip()}'"
                          for key, (ours, theirs) in differences.items() if ABSENT not in (ours, theirs))
    raise ValueError(
        f"{where} is not what conf/ composes for {chosen}:\n{listed}\n"
        f"params.yaml is written from conf/ by `dvc exp run`: to rewrite it from conf/ (keeping its choices) run "
        f"`vqalab compose`" + (f"; to run these values as an experiment: `dvc exp run {set_values}`; to keep them, "
                               f"write them in conf/" if set_values else ""))

