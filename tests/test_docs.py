"""The documentation stays true to the project: docs/parameters.md is what conf/ generates, every
relative link of README.md and docs/ reaches a file, every `dvc exp run -S ...` written in them
composes into parameters that validate (or fails, where the line says it fails), and the README's
figures are the committed run's. Fast: no DVC run."""

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest
from configs import ROOT, composed_params

from vqalab.params import Params
from vqalab.pipeline.validate import check_params

DOCS = ROOT / "docs"
MARKDOWN = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


reference = load_script("parameter_reference")


def named(path: Path) -> str:
    return str(path.relative_to(ROOT))


# The parameter reference -------------------------------------------------------------------------
def test_the_parameter_reference_is_what_conf_generates():
    expected = reference.render(ROOT / "conf")
    current = reference.OUT.read_text(encoding="utf-8")
    if current != expected:
        pytest.fail(reference.difference(current, expected, reference.OUT.relative_to(ROOT)), pytrace=False)


def test_the_reference_reads_comments_continuations_and_notes(tmp_path):
    conf = tmp_path / "conf"
    (conf / "group").mkdir(parents=True)
    (conf / "config.yaml").write_text(
        "# What the config is.\n"
        "defaults:\n  - _self_\n  - group: a   # the group's comment\n\n"
        "# A section's note.\n"
        "train:\n"
        "  lr: 1.0e-3     # the rate: 'quoted # not a comment'\n"
        "                 # and its continuation\n"
        "  lora: {r: 8, target_modules: [q, v]}\n"
        "  # a note on the next key\n"
        "  name: 'x # y'  # after a quoted hash\n")
    (conf / "group" / "a.yaml").write_text("# @package _global_\n# Option a.\ntrain:\n  lr: 2.0  # a's rate\n")
    text = reference.render(conf)
    assert "| `train.lr` | `0.001` | the rate: 'quoted # not a comment' and its continuation |" in text
    assert "| `train.lora` | `{r: 8, target_modules: [q, v]}` |  |" in text
    assert "a note on the next key\n\n| key | value | what it is |" in text
    assert "| `train.name` | `'x # y'` | after a quoted hash |" in text
    assert "A section's note." in text and "What the config is." in text
    assert "| `group` | `a` | [a](../conf/group/a.yaml) | the group's comment |" in text
    assert "`-S group=a` (the default)" in text and "| `train.lr` | `2.0` | a's rate |" in text


def test_the_reference_refuses_keys_its_lines_do_not_show(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text("defaults:\n  - _self_\ntrain: {lr: 1,\n  epochs: 2}\n")
    with pytest.raises(ValueError, match="one `key: value  # comment` a line"):
        reference.render(conf)


def test_a_specialisation_no_choice_selects_is_an_error(tmp_path):
    conf = tmp_path / "conf"
    for group in ("dataset", "recipe"):
        (conf / group).mkdir(parents=True)
    (conf / "config.yaml").write_text("defaults:\n  - _self_\n  - dataset: a\n  - optional recipe: ${dataset}_tiny\n")
    (conf / "dataset" / "a.yaml").write_text("x: 1\n")
    (conf / "recipe" / "b_tiny.yaml").write_text("y: 2\n")
    with pytest.raises(ValueError, match="no choice of dataset selects it"):
        reference.render(conf)


# Links ------------------------------------------------------------------------------------------
FENCE = re.compile(r"^ {0,3}(```|~~~)[^\n]*\n(.*?)^ {0,3}\1", re.S | re.M)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\s[^>]*?(?:href|src)=\"([^\"]+)\"", re.I)


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text that are not URLs: files of the project (with or without
    an anchor), and anchors of the page itself (``#part``)."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    targets = [*INLINE_LINK.findall(text), *REFERENCE_LINK.findall(text), *HTML_LINK.findall(text)]
    return [t for t in targets if not re.match(r"[a-zA-Z][\w+.-]*:", t)]


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown page's headings: lower case, punctuation dropped, spaces
    as hyphens, a repeated one numbered (``notes``, ``notes-1``)."""
    found, counts = set(), {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
        counts[slug] = counts.get(slug, 0) + 1
    return found


def test_links_and_anchors_are_read_from_markdown():
    text = ("[a](docs/a.md) ![b](img.png \"t\") [c](https://x.org) [d](#anchor) [e](f.md#part)\n"
            "`[g](not-a-link.md)`\n```\n[h](in-code.md)\n# Not a heading\n```\n[i]: ref.md\n<img src=\"pic.png\">\n"
            "## Checking a GPU: `bench/gpu_check.sh`\n### Notes\n### Notes\n")
    assert relative_links(text) == ["docs/a.md", "img.png", "#anchor", "f.md#part", "ref.md", "pic.png"]
    assert anchors(text) == {"checking-a-gpu-benchgpu_checksh", "notes", "notes-1"}


@pytest.mark.parametrize("page", MARKDOWN, ids=named)
def test_every_relative_link_reaches_a_file(page):
    """A link to a file of the project names one that exists; a link to a Markdown page's heading
    (``page.md#part``, ``#part``) names one it has."""
    missing = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        path, _, anchor = target.partition("#")
        path = path.split("?")[0]
        resolved = page if not path else ROOT / path.lstrip("/") if path.startswith("/") else page.parent / path
        if not resolved.exists():
            missing.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            missing.append(target)
    assert not missing, f"{named(page)} links to {missing}, which do not exist"


# Commands ---------------------------------------------------------------------------------------
FAILS = re.compile(r"#.*\bfails\b")
# A command that shows the form, not a run: `dvc exp run -S key=value`, `-S ...`, `-S model=<name>`.
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|\bkey=value\b")


def exp_run_commands(text: str) -> list[tuple[str, bool]]:
    """(the command, whether its line says it fails) of every `dvc exp run` in code, fenced blocks
    (continuation lines joined) and inline code spans, but those that show a form (``PLACEHOLDER``)."""
    found = []
    for block in (match[2] for match in FENCE.finditer(text)):
        for line in block.replace("\\\n", " ").splitlines():
            found += [(part, bool(FAILS.search(line))) for part in re.findall(r"dvc exp run[^;&|#`]*", line)]
    for span in re.findall(r"`([^`\n]*dvc exp run [^`\n]*-S[^`\n]*)`", FENCE.sub("", text)):
        found += [(part, False) for part in re.findall(r"dvc exp run[^;&|#`]*", span)]
    return [(command, fails) for command, fails in found if not PLACEHOLDER.search(command)]


def overrides_of(command: str) -> list[list[str]]:
    """The runs of a `dvc exp run` command that hold each value of its sweeps (a,b,c) once: the first
    of every sweep, then each other value with the others' first (a grid's other corners compose
    alike). A sweep of seeds composes alike for every seed: its first stands for it."""
    words = shlex.split(command)
    values = [words[i + 1] for i, word in enumerate(words) if word in ("-S", "--set-param") and i + 1 < len(words)]
    choices = [[f"{key}={option}" for option in split_sweep(value)] for key, value in (v.split("=", 1) for v in values)]
    first = [options[0] for options in choices]
    return [first, *([*first[:i], option, *first[i + 1:]] for i, options in enumerate(choices) for option in options[1:]
                     if not option.startswith("seed="))]


def split_sweep(value: str) -> list[str]:
    """Hydra's sweep a,b,c; a comma inside brackets, braces or quotes is not one."""
    parts, depth, current, quote = [], 0, "", None
    for char in value:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def validated(overrides: list[str]) -> None:
    """params.yaml as `dvc exp run -S <overrides>` composes it, every section typed as the stages type it."""
    check_params(Params(composed_params(*overrides)))


def test_commands_are_read_from_markdown():
    text = ("Run `dvc exp run -S seed=1` (not `dvc exp run -S key=value`) or:\n```bash\ndvc exp run --queue -S 'model=a,b' \\\n"
            "  -S model.text_lora='{r: 8, alpha: 16}'   # a grid\ndvc exp run -S x=1   # fails: no x\n```\n")
    commands = exp_run_commands(text)
    assert [(overrides_of(c), fails) for c, fails in commands] == [
        ([["model=a", "model.text_lora={r: 8, alpha: 16}"], ["model=b", "model.text_lora={r: 8, alpha: 16}"]], False),
        ([["x=1"]], True), ([["seed=1"]], False)]
    assert overrides_of("dvc exp run --queue -S seed=0,1 -S model=a,b,c -S x=1,2") == [
        ["seed=0", "model=a", "x=1"], ["seed=0", "model=b", "x=1"], ["seed=0", "model=c", "x=1"],
        ["seed=0", "model=a", "x=2"]]


DOC_COMMANDS = [(page, command, fails) for page in MARKDOWN
                for command, fails in exp_run_commands(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize(("page", "command", "fails"), DOC_COMMANDS,
                         ids=[f"{named(p)}: {c.strip()[:60]}" for p, c, _ in DOC_COMMANDS])
def test_every_dvc_exp_run_in_docs_composes_and_validates(page, command, fails):
    runs = overrides_of(command)
    sweep = any(len(split_sweep(word.split("=", 1)[-1])) > 1 for word in shlex.split(command) if "=" in word)
    assert not sweep or "--queue" in shlex.split(command), "DVC runs a sweep (a,b,c) only with --queue"
    for overrides in runs:
        if fails:
            with pytest.raises(ValueError):
                validated(overrides)
        else:
            validated(overrides)


def test_the_readmes_figures_are_the_committed_runs():
    """The figures a new user should expect after `make repro` are metrics/eval.json's, as `dvc repro`
    wrote it on the machine docs/results/ names (other processors differ in the last digit)."""
    import json

    quality = json.loads((ROOT / "metrics/eval.json").read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    accuracy = re.search(r"\*\*([\d.]+)% test accuracy\*\* on easy-VQA \(blind baseline ([\d.]+)%\)", readme)
    assert accuracy, "README.md should give the default run's test accuracy and blind baseline"
    assert (float(accuracy[1]), float(accuracy[2])) == (round(100 * quality["accuracy"], 2),
                                                        round(100 * quality["blind_accuracy"], 2))
