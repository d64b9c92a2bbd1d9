#!/usr/bin/env bash
# What the pull-request workflow posts as a comment: this checkout's figures against BASE_REF's,
# both reproduced here, one after the other, on this machine and these library versions - never
# against figures committed from another machine, whose processor gives other low bits.
#   usage: scripts/pr_metrics.sh BASE_REF [OUT.md]   (in the project's environment, from its root)
# The base runs in a git worktree of BASE_REF with its own source code, the head in this checkout;
# each is kept as a DVC experiment (pr-base, pr-head), so the tables are `dvc metrics diff` and
# `dvc params diff` between them, and `vqalab compare` pairs their test answers question by question.
set -euo pipefail
base="${1:?usage: $0 BASE_REF [OUT.md]}"
out="${2:-/dev/stdout}"
export DVC_NO_ANALYTICS=1
cache="$(dvc cache dir)"  # this checkout's DVC cache, wherever it is configured
base_sha=$(git rev-parse --verify "$base^{commit}")
worktree=$(mktemp -d)
cleanup() { git worktree remove --force "$worktree" >/dev/null 2>&1 || true; rm -rf "$worktree"; }
trap cleanup EXIT

dvc exp remove pr-base pr-head >/dev/null 2>&1 || true  # a rerun replaces them
git worktree add --detach --quiet "$worktree" "$base_sha"
echo "== reproducing the base ($base, $base_sha)" >&2
(
  cd "$worktree"
  # One cache and run cache: what both sides share (the data, often the features) is not recomputed.
  dvc cache dir --local "$cache" >/dev/null
  PYTHONPATH="$worktree/src${PYTHONPATH:+:$PYTHONPATH}" dvc exp run --name pr-base >&2
)
echo "== reproducing this checkout" >&2
dvc exp run --name pr-head >&2

{
  echo "### vqalab: this change against \`$base\`, both reproduced on the same runner"
  echo
  echo "#### Quality (metrics/eval.json, the kept epoch's validation figures)"
  echo
  # --all: every figure, changed or not, so the headline accuracy is always in the table.
  dvc metrics diff --md --all --targets metrics/eval.json metrics/train/metrics.json -- pr-base pr-head
  echo
  echo "#### Paired on the test questions (95% interval and paired test: one run a side, so seed variation is not counted)"
  echo
  vqalab compare --rev "$base_sha" --rev HEAD --only pr-base pr-head --baseline pr-base
  echo
  echo "#### Cost (metrics/cost.json: times differ from run to run)"
  echo
  dvc metrics diff --md --targets metrics/cost.json -- pr-base pr-head
  echo
  echo "#### Parameters changed"
  echo
  dvc params diff --md pr-base pr-head
} > "$out"
