"""The documentation stays true to the project: docs/parameters.md is what conf/ generates."""

import importlib.util
import sys

import pytest
from configs import ROOT


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


reference = load_script("parameter_reference")


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
