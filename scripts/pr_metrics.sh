#!/usr/bin/env bash
# Reproduce the pipeline on this checkout and write, as Markdown, how its metrics and params differ
# from BASE: what the pull-request workflow posts as a comment.
#   usage: scripts/pr_metrics.sh BASE_REF [OUT.md]   (run with the project's environment active)
set -euo pipefail
base="${1:?usage: $0 BASE_REF [OUT.md]}"
out="${2:-/dev/stdout}"
export DVC_NO_ANALYTICS=1
dvc repro >&2
{
  echo "### vqalab: metrics of this change against \`${base}\`"
  echo
  dvc metrics diff --md "$base"
  echo
  echo "#### Parameters changed"
  echo
  dvc params diff --md "$base"
} > "$out"
