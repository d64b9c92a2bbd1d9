"""A CPU benchmark on the pipeline: a named sweep of DVC experiments, run by DVC's queue and read
back from ``dvc exp show``. The stages, their order and their cache are DVC's; a benchmark adds its
table.

``planned`` composes and checks every experiment of a sweep (``-S strategy=full,lora -S
seed=0,1``, expanded as DVC expands it), so that a wrong value fails before anything is queued;
``queue_sweep`` queues it with ``dvc exp run --queue --name NAME`` (DVC names the experiments
NAME-1, NAME-2, ... in the sweep's order); ``run_queue`` runs the queue (``dvc exp run
--run-all``) one experiment at a time, so that no run's timing shares the CPU with another's;
``sweep_experiments`` reads them back from ``dvc exp show --json``, ``curve`` a per-epoch curve
from an experiment's commit, and ``setting_of`` says what makes each one: its choices and -S
values. ``run_sweep`` does it all for a script's options (``sweep_parser``). Every DVC
command is printed (on stderr) as it runs: a benchmark is those commands and a table.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vqalab.benchmark.common import typed
from vqalab.config import flatten
from vqalab.params import ABSENT, CONF_DIR, GROUPS, PARAMS_FILE, choices_of, composed, composed_differences
from vqalab.report.compare import experiment_state, read_exp_show, run_metrics, run_params

QUEUE_NOTE = ("Queued experiments run on a copy of the last commit plus the changes to files git tracks: "
              "`git add` or commit a new file (a conf/ option, a module) first, or they will not see it. "
              "Experiments queued before run too, in queue order.")
# The train stage's per-epoch curves (dvc.yaml's train plots: its DVCLive folder), one TSV a metric,
# committed with each experiment.
TRAIN_CURVES = "metrics/train/plots/metrics"
# The kept epoch's validation accuracy (``val_accuracy``) and number (``step``): dvc.yaml's train metrics.
TRAIN_SUMMARY_FILE = "metrics/train/metrics.json"


def dvc(*args: str) -> str:
    """``dvc args`` in the current folder; its output. A failure stops the benchmark, with DVC's message."""
    command = ["dvc", *args]
    print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"`{shlex.join(command)}` failed (run the benchmark from the project root, a git + DVC "
                         f"repository with a commit):\n{result.stderr.strip()[-2000:]}")
    return result.stdout


def sweep(overrides: Sequence[str]) -> list[list[str]]:
    """Each experiment's overrides, in order, as `dvc exp run --queue` expands the sweeps
    (``key=a,b``) among ``overrides``: DVC's own function."""
    from dvc.utils.hydra import get_hydra_sweeps

    file = str(PARAMS_FILE)
    return [combination[file] for combination in get_hydra_sweeps({file: list(overrides)})]


def experiment_names(name: str, count: int) -> list[str]:
    """The names DVC gives the ``count`` experiments queued with ``--name name``: name-1, name-2,
    ... for a sweep; one experiment alone keeps the name."""
    return [name] if count == 1 else [f"{name}-{i}" for i in range(1, count + 1)]


def planned(name: str, overrides: Sequence[str]) -> dict[str, dict]:
    """{experiment name: its params.yaml} of the sweep of ``overrides`` queued as ``name``: every
    experiment composed and checked, so that a wrong value fails before anything is queued, and told
    apart from the others."""
    combinations = sweep(overrides)
    given = {experiment: " ".join(combination)
             for experiment, combination in zip(experiment_names(name, len(combinations)), combinations)}
    plan: dict[str, dict] = {}
    for experiment, combination in zip(given, combinations):
        try:
            plan[experiment] = composed(CONF_DIR, combination)
            typed(plan[experiment])
        except ValueError as err:
            raise SystemExit(f"{experiment} ({given[experiment]}): {err}") from None
    twins = alike(plan, lambda values: values)
    if twins:
        raise SystemExit(f"{twins[1]} ({given[twins[1]]}) composes the same parameters as {twins[0]} "
                         f"({given[twins[0]]}): drop the value of the sweep that changes nothing a run reads")
    return plan


def alike(plan: dict[str, dict], key: Callable[[dict], Any]) -> tuple[str, str] | None:
    """The first two experiments of ``plan`` whose parameters give the same ``key``, if any."""
    first_with: dict[str, str] = {}
    for name, values in plan.items():
        text = json.dumps(key(values), sort_keys=True, default=str)
        if text in first_with:
            return first_with[text], name
        first_with[text] = name
    return None


def queue_sweep(name: str, overrides: Sequence[str], *, targets: Sequence[str] = (), force: bool = False) -> None:
    """Queue the sweep of ``overrides`` named ``name``; with ``targets``, its experiments run those
    stages and what they depend on only; ``force`` runs every stage again instead of restoring one
    from DVC's run-cache (a run of the same parameters and code before)."""
    queued = dvc("exp", "run", "--queue", "--name", name, *(arg for o in overrides for arg in ("-S", o)),
                 *(["--force"] if force else []), *targets)
    print(queued, file=sys.stderr, end="")


def run_queue(*, jobs: int = 1) -> None:
    """Run every queued experiment, ``jobs`` at a time, DVC following their logs (on stderr: stdout
    is the benchmark's table). One at a time, no run's timing shares the CPU with another's."""
    command = ["dvc", "exp", "run", "--run-all", "--jobs", str(jobs)]
    print(f"$ {shlex.join(command)}", file=sys.stderr, flush=True)
    if subprocess.run(command, stdout=sys.stderr).returncode != 0:
        raise SystemExit(f"`{shlex.join(command)}` failed: `dvc queue status` lists the experiments, "
                         f"`dvc queue logs NAME` shows why one failed")


@dataclass(frozen=True)
class Experiment:
    """One experiment of a sweep, as ``dvc exp show --json`` shows it."""

    name: str
    state: str  # queued | running | success | failed
    run: dict  # its entry in ``dvc exp show --json``: what vqalab.report.compare.run_row reads
    values: dict  # its params.yaml

    @property
    def rev(self) -> str:
        """Its commit (for ``git show``)."""
        return self.run["rev"]

    def metrics(self, path: str) -> dict:
        """The figures of its metrics file ``path`` (e.g. metrics/cost.json); {} where it has none."""
        return run_metrics(self.run, path)


def sweep_experiments(name: str, *, rev: str = "HEAD") -> list[Experiment]:
    """The experiments of commit ``rev`` named ``name`` or ``name-N`` (a sweep queued with that
    name), in the sweep's order."""
    member = re.compile(rf"{re.escape(name)}(?:-(\d+))?")
    found = []
    for commit in read_exp_show(None, all_commits=False, revs=[rev]):
        for experiment in commit.get("experiments") or []:
            match = member.fullmatch(experiment.get("name") or "")
            if not match:
                continue
            run = (experiment.get("revs") or [{}])[0]
            values = run_params((run.get("data") or {}).get("params") or {}) or {}
            found.append((int(match.group(1) or 0), Experiment(name=experiment["name"], run=run, values=values,
                                                               state=experiment_state(experiment))))
    if not found:
        raise SystemExit(f"no experiment named {name} or {name}-N on {rev}: `dvc exp show --rev {rev}` lists "
                         f"its experiments (a sweep's experiments are under the commit it was queued on)")
    return [experiment for _, experiment in sorted(found, key=lambda pair: pair[0])]


def finished(experiments: Sequence[Experiment]) -> list[Experiment]:
    """The experiments that succeeded; each other one is named on stderr, with how to see why."""
    for experiment in experiments:
        if experiment.state != "success":
            print(f"{experiment.name} is {experiment.state}, left out of the table"
                  + (f": `dvc queue logs {experiment.name}` shows why" if experiment.state == "failed" else ""),
                  file=sys.stderr)
    return [experiment for experiment in experiments if experiment.state == "success"]


def curve(experiment: Experiment, metric: str) -> dict[int, float]:
    """{epoch: value} of ``metric`` as the experiment's train stage logged it (its DVCLive TSV,
    committed with the experiment)."""
    path = f"{TRAIN_CURVES}/{metric}.tsv"
    try:
        text = committed_file(experiment.rev, path)
    except FileNotFoundError as err:
        raise SystemExit(f"{experiment.name} ({experiment.rev[:7]}) has no {path}: {err}") from None
    return {int(row["step"]): float(row[metric]) for row in csv.DictReader(text.splitlines(), delimiter="\t")}


@functools.lru_cache(maxsize=None)
def committed_file(rev: str, path: str) -> str:
    """``path`` as commit ``rev`` holds it (a reference run's curves are read for every row it serves)."""
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if shown.returncode != 0:
        raise FileNotFoundError(shown.stderr.strip())
    return shown.stdout


def setting_of(experiment: Experiment) -> dict[str, Any]:
    """What makes the experiment, as `dvc exp run -S` would make it again: its choice in each config
    group (``strategy``: ``lora``), then each value it sets beyond what conf/ composes for them."""
    differences = composed_differences(experiment.values, conf_dir=CONF_DIR)
    return {**choices_of(experiment.values), **{key: ours for key, (ours, _) in differences.items()}}


def value_of(values: dict, key: str) -> Any:
    """In params.yaml's ``values``, the choice of group ``key`` or the value of parameter ``key`` (dotted)."""
    if key in GROUPS:
        return choices_of(values)[key]
    return flatten(values).get(key, ABSENT)


def split_settings(experiments: Sequence[Experiment],
                   settings: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """What tells the experiments apart and what they share, from their ``settings`` (``setting_of``):
    the groups and parameters set to other values in some than in others (in the order first seen),
    and {group or parameter: value} of the others."""
    keys = dict.fromkeys(key for setting in settings for key in setting)
    varied = [key for key in keys
              if len({json.dumps(value_of(experiment.values, key), default=str) for experiment in experiments}) > 1]
    shared = {key: value_of(experiments[0].values, key) for key in keys if key not in varied} if experiments else {}
    return varied, shared


def picked(values: dict, keys: Sequence[str]) -> dict[str, Any]:
    """{key: value} of ``keys`` (groups or parameters) in params.yaml's ``values``."""
    return {key: value_of(values, key) for key in keys}


def label(setting: dict[str, Any]) -> str:
    """``key=value, ...`` (``-`` for none)."""
    return ", ".join(f"{key}={value}" for key, value in setting.items()) or "-"


def sweep_parser(description: str, *, defaults: dict[str, str]) -> argparse.ArgumentParser:
    """A sweep benchmark's options: its -S values (over ``defaults``), its name, or the table of an
    earlier sweep."""
    parser = argparse.ArgumentParser(description=description, epilog=QUEUE_NOTE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    given = " ".join(f"-S {key}={value}" for key, value in defaults.items())
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[], metavar="KEY=VALUE[,VALUE]",
                        help=f"a value or a sweep of values, as `dvc exp run -S` takes them; over the defaults {given}")
    parser.add_argument("--name", help="the sweep's name (default: the benchmark's and the time); its experiments "
                                       "are NAME-1, NAME-2, ... (`dvc exp show`)")
    parser.add_argument("--force", action="store_true",
                        help="run every stage again, where DVC's run-cache holds a run of the same parameters and code")
    parser.add_argument("--table", metavar="NAME", help="queue nothing: the table of the sweep named NAME, run before")
    parser.add_argument("--rev", default="HEAD", help="with --table: the commit the sweep was queued on (default HEAD)")
    return parser


def with_defaults(overrides: Sequence[str], defaults: dict[str, str]) -> list[str]:
    """``defaults`` for the keys ``overrides`` leave out, then ``overrides`` (DVC takes one value a key)."""
    given = {override.split("=", 1)[0].lstrip("+~") for override in overrides}
    return [f"{key}={value}" for key, value in defaults.items() if key not in given] + list(overrides)


def run_sweep(args: argparse.Namespace, *, benchmark: str, defaults: dict[str, str], targets: Sequence[str] = (),
              jobs: int = 1, check: Callable[[dict[str, dict]], None] | None = None) -> list[Experiment]:
    """The experiments of the sweep ``args`` (``sweep_parser``'s) ask for: queued as planned
    (``check``, if given, sees the plan first) and run, or with ``--table``, read from an earlier run."""
    if args.table:
        return sweep_experiments(args.table, rev=args.rev)
    name = args.name or f"{benchmark}-{datetime.now():%Y%m%d-%H%M%S}"
    overrides = with_defaults(args.overrides, defaults)
    plan = planned(name, overrides)
    if check:
        check(plan)
    queue_sweep(name, overrides, targets=targets, force=args.force)
    run_queue(jobs=jobs)
    return sweep_experiments(name)
