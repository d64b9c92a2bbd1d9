"""The parameters of a run, as every stage reads them.

The params stage validates params.yaml (``vqalab.resolve.load_params``) and writes every value the
run uses (``Params.values``: recipes applied, the chosen data set's and family's sections, the SBERT
scorer of the profile) to data/params/resolved.json, under ``resolved``. Every other stage reads
that file back (``Params.read(path, stage=...)``) and may read only the parameters ``STAGE_PARAMS``
gives it - which dvc.yaml lists as the stage's ``params`` - so DVC reruns a stage exactly when a
value it reads changes, and ``dvc params diff`` / ``dvc exp show`` list every value a run used,
including the recipe's.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

from vqalab.config import (RUN_CONTROLS, DownloadParams, EvaluateParams, PreprocessParams, ReportParams, TrainParams,
                           from_mapping)

# The resolved file's root key: its values show in `dvc exp show` as resolved.<name>, apart from
# params.yaml's own.
RESOLVED_ROOT = "resolved"

# What each DVC stage reads, as dotted names of ``Params`` (``family``: the chosen family's section
# for the chosen profile, ``dataset_config``: the chosen data set's, ``sbert_model``: the chosen
# profile's scorer, ``encoders``: what the frozen encoders' cached outputs depend on).
STAGE_PARAMS = {
    "download": ("dataset", "dataset_config", "download"),
    "preprocess": ("dataset", "seed", "preprocess", "family.image_size", "family.resize"),
    "features": ("model", "profile", "encoders", "train.device"),
    "blind": ("sbert_model",),
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


# The sections typed on access (the others are plain values: names, the seed, the derived
# ``encoders``, and the chosen family's and data set's sections, which their registries type:
# ``vqalab.models.registry.family_config``, ``vqalab.data.registry.dataset_config``).
TYPED = {"download": DownloadParams, "preprocess": PreprocessParams, "train": TrainParams,
         "evaluate": EvaluateParams, "report": ReportParams}


class Params:
    """The parameters of one run, its sections typed on access (``p.train`` is a ``TrainParams``);
    ``family`` and ``dataset_config`` (the chosen family's and data set's sections) are typed by
    their registries, which import the chosen module only: ``chosen_family_config(p)``, ``dataset_config(p)``.

    Read for a ``stage``, only the parameters ``STAGE_PARAMS`` gives it can be read (a section of
    which it reads some fields gives those fields only, as plain values), so a stage cannot depend
    on a value DVC does not track for it.
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
            self._typed[name] = from_mapping(TYPED[name], value, name) if name in TYPED else value
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


def plain(value: Any) -> Any:
    """``value`` as JSON data: dataclasses become mappings, tuples lists."""
    if dataclasses.is_dataclass(value):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
