"""docs/parameters.md, generated from conf/: every key of conf/config.yaml and of each option of
each config group, with its value and the comment written beside it.

    python scripts/parameter_reference.py           # write docs/parameters.md
    python scripts/parameter_reference.py --check   # exit 1, showing the difference, when it is out of date

The comments are conf/'s own, so there is no second copy to keep: a key's comment is the one on its
line (``key: value  # comment``) and the comment lines aligned under it; a comment block above a
key introduces what follows it; a file's first comment block describes the file. The values are
yaml's (the files are read with yaml too, and every key yaml finds must have been found on a line).
tests/test_docs.py fails when docs/parameters.md is not what this script writes.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
OUT = ROOT / "docs" / "parameters.md"
CONFIG = "config.yaml"
PACKAGE_GLOBAL = "# @package _global_"

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?:\s(?P<rest>.*))?$")
DEFAULTS_ITEM = re.compile(r"^ *- +(?:(?P<optional>optional) +)?(?P<group>[\w/]+)(?:: *(?P<option>[^#\s]+))?")
INTERPOLATION = re.compile(r"\$\{(\w+)\}")


@dataclass
class Entry:
    """One key of a conf file, as its lines write it."""

    path: tuple[str, ...]
    value_text: str  # what follows ``key:`` on its line, comment removed ('' for a section)
    comment: list[str] = field(default_factory=list)  # its inline comment and the lines aligned under it
    note: list[str] = field(default_factory=list)  # the comment block just above it
    comment_column: int | None = None


@dataclass
class ConfFile:
    path: Path
    description: list[str]
    entries: list[Entry]
    values: dict
    defaults: list[tuple[str, str | None, bool, str]]  # (group, option, optional, comment): config.yaml only
    global_package: bool  # its first line is PACKAGE_GLOBAL: its keys are params.yaml's own, not under its group


def split_comment(text: str) -> tuple[str, str | None, int | None]:
    """(value, comment, column of '#') of the text after ``key:``; a '#' inside quotes is not a comment."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].strip(), text[i + 1:].strip(), i
    return text.strip(), None, None


def parse_file(path: Path) -> ConfFile:
    """The entries of one conf file, with their comments; checked against what yaml reads."""
    lines = path.read_text(encoding="utf-8").splitlines()
    values = yaml.safe_load("\n".join(lines)) or {}
    description: list[str] = []
    entries: list[Entry] = []
    defaults: list[tuple[str, str | None, bool, str]] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] = []  # a comment block not yet attached
    last: Entry | None = None  # the entry whose comment a following aligned comment line continues
    seen_key = False
    in_defaults = False
    for line in lines:
        stripped = line.strip()
        if not stripped:
            last = None
            if not seen_key and pending and not description:
                description, pending = pending, []
            continue
        if stripped.startswith("#"):
            if stripped == PACKAGE_GLOBAL:
                continue
            column = len(line) - len(line.lstrip())
            text = stripped[1:]
            text = text[1:] if text.startswith(" ") else text
            if last is not None and last.comment_column == column:
                last.comment.append(text)
            else:
                last = None
                pending.append(text)
            continue
        if in_defaults and stripped.startswith("- "):
            item = DEFAULTS_ITEM.match(line)
            if item is None:
                raise ValueError(f"{path}: cannot read the defaults entry {stripped!r}")
            _, comment, _ = split_comment(line[item.end():])
            defaults.append((item["group"], item["option"], bool(item["optional"]), comment or ""))
            last = None
            continue
        match = KEY_LINE.match(line)
        if match is None:
            raise ValueError(f"{path}: cannot read the line {line!r}: one `key: value  # comment` a line")
        if not seen_key:
            description, pending = pending, []
            seen_key = True
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        rest = match["rest"] or ""
        value_text, comment, column = split_comment(rest)
        entry = Entry(path=(*(key for _, key in stack), match["key"]), value_text=value_text,
                      comment=[comment] if comment is not None else [], note=pending,
                      comment_column=None if column is None else len(line) - len(rest) + column)
        pending = []
        in_defaults = entry.path == ("defaults",)
        if in_defaults:
            if comment is not None or entry.note:
                raise ValueError(f"{path}: say what the defaults list does above it, in the file's first comment block")
        else:
            entries.append(entry)
        stack.append((indent, match["key"]))
        last = entry if comment is not None else None
    if pending:
        raise ValueError(f"{path}: the comment block {pending[0]!r} ... is followed by no key")
    conf = ConfFile(path=path, description=description, entries=entries, values=values, defaults=defaults,
                    global_package=lines[:1] == [PACKAGE_GLOBAL])
    check_every_key_read(conf)
    return conf


def leaf_paths(values: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of yaml's leaves (an empty mapping is a leaf)."""
    paths = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            paths += leaf_paths(value, (*prefix, str(key)))
        else:
            paths.append((*prefix, str(key)))
    return paths


def is_section(entry: Entry) -> bool:
    return entry.value_text == ""


def check_every_key_read(conf: ConfFile) -> None:
    """What the lines say is what yaml reads: each key's value on its line is yaml's value of that key,
    and every key yaml reads was found on a line (a leaf there, or inside a leaf written in flow style)."""
    leaves = [e for e in conf.entries if not is_section(e)]
    for entry in leaves:
        try:
            same = yaml.safe_load(entry.value_text) == lookup(conf.values, entry.path)
        except (yaml.YAMLError, KeyError, TypeError):
            same = False
        if not same:
            raise ValueError(f"{conf.path}: {'.'.join(entry.path)}: its line does not hold its whole value: "
                             f"write one `key: value  # comment` a line")
    lines = {e.path for e in leaves}
    missed = [".".join(p) for p in leaf_paths({k: v for k, v in conf.values.items() if k != "defaults"})
              if not any(p[:len(line)] == line for line in lines)]
    if missed:
        raise ValueError(f"{conf.path}: keys {missed} were not read from the file's lines: "
                         f"write one `key: value  # comment` a line")


def lookup(values: dict, path: tuple[str, ...]):
    for key in path:
        values = values[key]
    return values


def shown(value) -> str:
    """A value as it would be written with -S (yaml's flow style)."""
    if value is None:
        return "null"
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("...").strip()


def cell(text: str) -> str:
    return text.replace("|", "\\|")


def code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def prose(lines: list[str]) -> list[str]:
    """Comment lines as Markdown: paragraphs, and the lines indented inside a comment as a code block."""
    out: list[str] = []
    paragraph: list[str] = []
    block: list[str] = []

    def flush():
        if paragraph:
            out.append(" ".join(paragraph))
            out.append("")
            paragraph.clear()
        if block:
            out.extend(["```bash", *block, "```", ""])
            block.clear()

    for line in lines:
        if line.startswith("  "):
            if paragraph:
                flush()
            block.append(line.strip())
        else:
            if block:
                flush()
            if line.strip():
                paragraph.append(line.strip())
            else:
                flush()
    flush()
    return out


def table(conf: ConfFile, *, prefix: tuple[str, ...] = (), headings: str = "") -> list[str]:
    """The file's keys as tables (key, value, comment). A note above a key, or a new top-level
    section, starts a new table; with ``headings`` (e.g. "###") each top-level section gets one."""
    out: list[str] = []
    rows: list[str] = []
    header = ["| key | value | what it is |", "|---|---|---|"]

    def flush():
        if rows:
            out.extend([*header, *rows, ""])
            rows.clear()

    for entry in conf.entries:
        if is_section(entry) and len(entry.path) == 1:
            flush()
            if headings:
                out.extend([f"{headings} {'.'.join((*prefix, *entry.path))}", ""])
        if entry.note:
            flush()
            out.extend(prose(entry.note))
        if is_section(entry) and not entry.comment:
            continue
        key = ".".join((*prefix, *entry.path))
        value = "" if is_section(entry) else code(shown(lookup(conf.values, entry.path)))
        rows.append(f"| {code(key)} | {cell(value)} | {cell(' '.join(entry.comment))} |")
    flush()
    return out


def link(path: Path, base: Path) -> str:
    """A link from docs/parameters.md to ``path`` (``base``: the project root, conf/'s parent)."""
    name = path.relative_to(base).as_posix()
    return f"[{name}](../{name})"


def options(conf_dir: Path, group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def specialisations(pattern: str, conf_dir: Path, choices: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """{option file name: the choices that select it} for a defaults entry such as ``${dataset}_${model}``."""
    groups = INTERPOLATION.findall(pattern)
    selected = {}
    for combination in itertools.product(*(choices[g] for g in groups)):
        chosen = dict(zip(groups, combination))
        selected[INTERPOLATION.sub(lambda m: chosen[m[1]], pattern)] = chosen
    return selected


def render(conf_dir: Path = CONF) -> str:
    """docs/parameters.md as conf_dir gives it."""
    conf_dir = Path(conf_dir).resolve()
    base = conf_dir.parent
    main = parse_file(conf_dir / CONFIG)
    choices = {group: options(conf_dir, group) for group, option, _, _ in main.defaults
               if option is not None and not INTERPOLATION.search(option)}
    out = [
        "<!-- Generated from conf/ by scripts/parameter_reference.py: edit conf/, then run it. "
        "tests/test_docs.py fails when this file and conf/ differ. -->",
        "",
        "# Parameters",
        "",
        "Every parameter of a run, as the files of [conf/](../conf) set it, with the comment written beside it "
        "there. `dvc exp run` composes them into `params.yaml` (DVC's Hydra composition), which is the only "
        "parameter file the stages read. Choose an option of a group with `-S group=option` and set any key "
        "for one experiment with `-S key=value`; to change a value for good, change it in conf/ (then, for "
        "`dvc repro`, `vqalab compose` rewrites `params.yaml`). In conf/config.yaml, `{}` and `???` "
        "mark what a group fills in; `null` means none.",
        "",
        f"## How conf/ composes ({link(conf_dir / CONFIG, base)})",
        "",
        *prose(main.description),
        "The defaults list, in order (a later entry's values win over an earlier one's; `optional` entries "
        "apply only where a file of that name exists):",
        "",
        "| entry | default | options | what it is |",
        "|---|---|---|---|",
    ]
    for group, option, optional, comment in main.defaults:
        if option is None:
            out.append(f"| {code(group)} | | | {cell('the values of ' + CONFIG + ' itself (below)' if group == '_self_' else comment)} |")
            continue
        names = ", ".join(f"[{name}](../{(conf_dir / group / f'{name}.yaml').relative_to(base).as_posix()})"
                          for name in options(conf_dir, group))
        entry = f"optional {group}" if optional else group
        out.append(f"| {code(entry)} | {code(option)} | {names} | {cell(comment)} |")
    out += ["", f"## {CONFIG}", "", *table(main, headings="###")]
    for group, option, _, comment in main.defaults:
        if option is None:
            continue
        pattern = INTERPOLATION.search(option) is not None
        selected = specialisations(option, conf_dir, choices) if pattern else {}
        out += [f"## {group}", "", *([f"{comment}", ""] if comment else [])]
        for name in options(conf_dir, group):
            path = conf_dir / group / f"{name}.yaml"
            conf = parse_file(path)
            if pattern:
                if name not in selected:
                    raise ValueError(f"{path}: no choice of {', '.join(INTERPOLATION.findall(option))} selects it "
                                     f"(the defaults list reads {group}: {option}), so no run applies it")
                how = "applied when " + " and ".join(code(f"{g}={o}") for g, o in selected[name].items())
            else:
                how = code(f"-S {group}={name}") + (" (the default)" if name == option else "")
            out += [f"### {group}: {name}", "", f"{how}; {link(path, base)}", "", *prose(conf.description),
                    *table(conf, prefix=() if conf.global_package else (group,))]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when the file is out of date")
    parser.add_argument("--conf", type=Path, default=CONF, help="the config folder (default: conf/)")
    parser.add_argument("--out", type=Path, default=OUT, help="the reference (default: docs/parameters.md)")
    args = parser.parse_args(argv)
    out, conf = shown_path(args.out), shown_path(args.conf)
    try:
        text = render(args.conf)
    except (ValueError, OSError, yaml.YAMLError) as err:
        sys.exit(f"error: {err}")
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.is_file() else ""
        if current != text:
            print(difference(current, text, out), file=sys.stderr)
            sys.exit(1)
        print(f"{out}: up to date with {conf}")
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"{out}: written from {conf}")


def shown_path(path: Path) -> Path:
    """``path`` relative to the working folder where it is inside it (as messages name it)."""
    path = path.resolve()
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def difference(current: str, expected: str, out: Path, limit: int = 40) -> str:
    """What differs between ``out`` and what conf/ gives, and the command that rewrites it."""
    diff = list(difflib.unified_diff(current.splitlines(), expected.splitlines(), f"{out} (as it is)",
                                     f"{out} (from conf/)", lineterm="", n=1))
    shown_lines = diff[:limit] + ([f"... {len(diff) - limit} more lines"] if len(diff) > limit else [])
    return (f"{out} is not what conf/ gives:\n" + "\n".join(shown_lines) +
            "\nrun `python scripts/parameter_reference.py` to rewrite it (and commit it with conf/)")


if __name__ == "__main__":
    main()
