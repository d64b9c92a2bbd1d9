"""Typed parameter sections and their validation.

``vqalab.params`` validates the whole of params.yaml into these objects (and a family's or data
set's own config class). This module imports no model or data set, so a stage that needs neither
does not depend on them. No field has a default: conf/ gives every value, so a value left out
fails, naming it, instead of silently taking one that may differ from the documented one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any


PROFILES = ("tiny", "paper")


def flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    """A nested params mapping as ``{"section.key": value}`` (an empty mapping is a value)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat



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
        built = cls(**values)
    except ValueError as err:
        raise ValueError(f"params: {where}: {err}") from None
    # Where it came from (not a field: it is not a setting), so messages name the real section.
    object.__setattr__(built, "section", where)
    return built


def param_name(config: Any, field_name: str) -> str:
    """``<section>.<field>`` of a config built by ``from_mapping`` (e.g. model.text_encoder)."""
    return f"{getattr(config, 'section', type(config).__name__)}.{field_name}"


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
    if value is None:  # and the parameter cannot be empty
        raise ValueError(f"params: {where} is empty (null), which it cannot be: give it a value")
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_mapping(hint, value, where)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"params: {where} must be a mapping, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
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


# How preprocess makes images square (``vqalab.data.preprocess.to_square``). Every family's config
# names one, so the check lives here, where a config can use it without importing the data code.
RESIZE_MODES = ("squash", "crop", "pad")


def check_resize(mode: str, where: str = "resize") -> None:
    _require(mode in RESIZE_MODES, f"{where} must be one of {RESIZE_MODES}, got {mode!r}")


def check_positive_int(value: Any, where: str) -> None:
    """For a value read outside its typed section (a stage that reads one key of another's)."""
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
             f"{where} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class DownloadParams:
    # Keep only the first N images of each split (and their questions): for smoke runs.
    max_images_per_split: int | None
    # error: stop at the first bad record, naming it; skip: skip bad records and count them.
    on_bad_record: str

    def __post_init__(self) -> None:
        _require(self.max_images_per_split is None or self.max_images_per_split > 0,
                 f"max_images_per_split must be a positive integer or null, got {self.max_images_per_split}")
        _require(self.on_bad_record in ("error", "skip"), f"on_bad_record must be error or skip, got {self.on_bad_record!r}")


@dataclass(frozen=True)
class PreprocessParams:
    val_fraction: float
    val_split: str  # auto | image | question: what the validation split is drawn by
    min_answer_count: int

    def __post_init__(self) -> None:
        _require(0.0 < self.val_fraction < 1.0, f"val_fraction must be in (0, 1), got {self.val_fraction}")
        _require(self.val_split in ("auto", "image", "question"),
                 f"val_split must be auto, image or question, got {self.val_split!r}")
        _require(self.min_answer_count >= 1, f"min_answer_count must be >= 1, got {self.min_answer_count}")


# The run section: how the train stage runs, not what it makes, so not among its DVC parameters
# (the stage reads them, changing them retrains nothing): a resumed run ends where an uninterrupted
# one does, the launcher only sets how many processes share the work, and compiling only how fast
# a step runs.
@dataclass(frozen=True)
class RunControls:
    # Continue an interrupted run from its last completed epoch (its saved training state).
    resume: bool
    # The command that starts the train stage (dvc.yaml's cmd): python, or e.g.
    # "accelerate launch --num_processes 4" for data-parallel training on 4 GPUs.
    launcher: str
    # torch.compile the model's training forward: faster steps on a GPU after a compilation of
    # minutes; the same model up to float rounding (fused kernels sum in another order).
    compile: bool

    def __post_init__(self) -> None:
        _require(bool(self.launcher.strip()), "launcher must be a command, e.g. python or accelerate launch ...")


RUN_CONTROLS = tuple(f.name for f in dataclasses.fields(RunControls))


@dataclass(frozen=True)
class TrainParams(RunControls):
    """The train section and the run section's controls (``RunControls``): what the train stage
    reads. ``batch_size`` is not written in the train section: it is the family's (``model.batch_size``,
    its learning rates go with it)."""

    max_epochs: int
    patience: int
    batch_size: int
    weight_decay: float
    warmup_ratio: float
    grad_clip: float | None
    # The share of a list answer's training target ("chair, table") its parts get (``PartCredit``); 0: one-hot.
    answer_part_credit: float
    device: str
    # Stop once validation accuracy reaches this (null: run until patience or max_epochs).
    target_val_accuracy: float | None
    # auto | fp32 | bf16 | fp16: mixed precision (autocast; fp16 adds a gradient scaler).
    precision: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.max_epochs >= 1, f"max_epochs must be >= 1, got {self.max_epochs}")
        _require(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _require(0.0 <= self.warmup_ratio < 1.0, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        _require(self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be > 0 or null, got {self.grad_clip}")
        _require(0.0 <= self.answer_part_credit < 1.0,
                 f"answer_part_credit must be in [0, 1), got {self.answer_part_credit}")
        _require(self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
                 f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        _require(self.precision in ("auto", "fp32", "bf16", "fp16"),
                 f"precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        _require(self.target_val_accuracy is None or 0 < self.target_val_accuracy <= 1,
                 f"target_val_accuracy must be in (0, 1] or null, got {self.target_val_accuracy}")


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int
    # The SBERT similarity's scorer (the profile sets it): a hub id, a local folder, or packaged:<name>.
    sbert_model: str

    def __post_init__(self) -> None:
        _require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class ReportParams:
    # The error gallery's row cap: wrong answers first; keeps the page a few MB on large test sets.
    gallery_max_rows: int

    def __post_init__(self) -> None:
        _require(self.gallery_max_rows >= 1, f"gallery_max_rows must be >= 1, got {self.gallery_max_rows}")
