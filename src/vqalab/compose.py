"""``vqalab compose``: write params.yaml from conf/, as `dvc exp run` does before it runs.

    vqalab compose                      # after a change to conf/: params.yaml anew, its choices kept
    vqalab compose dataset=vqa_rad      # another choice of a group (dataset, model, profile, strategy)

`dvc exp run` composes params.yaml itself; this is for `dvc repro`, which runs params.yaml as it is
and refuses one that is not what conf/ composes. Values (``train.max_epochs=4``) are not taken here:
write them in conf/, or run them as an experiment, `dvc exp run -S train.max_epochs=4`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from vqalab.config import flatten
from vqalab.io import atomic_path
from vqalab.params import CONF_DIR, GROUPS, PARAMS_FILE, choices_of, composed_text, read_params


def compose_params(path: Path, choices: dict[str, str]) -> dict[str, tuple]:
    """Rewrite ``path`` from the conf/ beside it with its own choices updated by ``choices``;
    returns what changed, ``{key: (before, after)}``."""
    unknown = sorted(set(choices) - set(GROUPS))
    if unknown:
        raise ValueError(f"{unknown} name no config group; the groups are {list(GROUPS)}. A value belongs in conf/, "
                         f"or in an experiment: dvc exp run -S key=value")
    before = read_params(path) if path.is_file() else {}
    kept = choices_of(before) if before else {}
    chosen = {group: option for group, option in {**kept, **choices}.items() if option is not None}
    text = composed_text(path.parent / CONF_DIR, [f"{group}={option}" for group, option in chosen.items()])
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    old, new = flatten(before), flatten(yaml.safe_load(text))
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}


def main(argv: list[str] | None = None, prog: str = "vqalab compose") -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("choices", nargs="*", metavar="GROUP=OPTION", help=f"a choice of a group: {', '.join(GROUPS)}")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help=f"the file to write (default: {PARAMS_FILE})")
    args = parser.parse_args(argv)
    malformed = [c for c in args.choices if c.count("=") != 1]
    if malformed:
        parser.error(f"{malformed}: give choices as GROUP=OPTION, e.g. dataset=vqa_rad")
    try:
        changed = compose_params(args.params, dict(c.split("=") for c in args.choices))
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    for key, (before, after) in changed.items():
        print(f"{key}: {before!r} -> {after!r}")
    print(f"{args.params}: {len(changed)} value(s) changed")


if __name__ == "__main__":
    main()
