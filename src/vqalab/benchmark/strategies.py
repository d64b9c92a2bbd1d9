"""A benchmark strategy: a file of parameter overrides, shared by every benchmark that runs it.

A strategy file (YAML, named ``<strategy>.yaml``) holds up to two mappings: ``family``, values for
the section of whichever family is benchmarked, in the profile it runs (``<model>.<profile>`` of
params.yaml), and ``train``, values for the train section. ``strategy_overrides`` nests them as
params.yaml is nested, over the benchmark's own values, for ``vqalab.resolve.load_params``, which
checks them as it checks params.yaml: a value the chosen family has no parameter for fails there,
naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vqalab.resolve import merge_overrides

SECTIONS = ("family", "train")


@dataclass(frozen=True)
class Strategy:
    name: str
    family: dict = field(default_factory=dict)  # the chosen family's section, in the profile benchmarked
    train: dict = field(default_factory=dict)

    def values(self) -> dict:
        """The file's values, as the benchmarks record them beside their results."""
        return {"family": dict(self.family), "train": dict(self.train)}


def load_strategy(path: Path) -> Strategy:
    """The strategy in ``path``, named after the file."""
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict) or set(values) - set(SECTIONS):
        raise ValueError(f"{path}: a strategy is a mapping of {' and '.join(SECTIONS)} (each a mapping of "
                         f"parameters), got {values!r}")
    for section, mapping in values.items():
        if not isinstance(mapping, dict):
            raise ValueError(f"{path}: {section} must be a mapping of parameters, got {mapping!r}")
    return Strategy(name=path.stem, **values)


def load_strategies(directory: Path) -> dict[str, Strategy]:
    """Every strategy in ``directory`` (its ``*.yaml`` files), by name."""
    strategies = {path.stem: load_strategy(path) for path in sorted(directory.glob("*.yaml"))}
    if not strategies:
        raise FileNotFoundError(f"{directory} holds no strategy (<name>.yaml)")
    return strategies


def strategy_overrides(strategy: Strategy, *, model: str, profile: str, base: dict | None = None) -> dict:
    """The parameter overrides of one run: ``model`` and ``profile`` chosen, the benchmark's own
    values (``base``, nested as params.yaml), then the strategy's, which win over them."""
    own = {model: {profile: dict(strategy.family)}, "train": dict(strategy.train)}
    return merge_overrides({**(base or {}), "model": model, "profile": profile}, own)
