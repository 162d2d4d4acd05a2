#!/usr/bin/env bash
# Validates deploy/ (called by `make lint`): YAML and JSON parse, every metric
# name in the alert rules, dashboard and KEDA queries exists in the Go code,
# the kustomizations render and keep the fleet's invariants, and — when
# promtool is installed — the rules, their unit tests and the dashboard's
# PromQL. Details: deploy/check.py. Needs python3 with PyYAML; uses kustomize
# or kubectl, and promtool (PROMTOOL=/path) when present.
#   USHER_DEPLOY_CHECK_STRICT=1 deploy/check.sh   # a missing tool fails instead of skipping
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "FAIL deploy/check.sh needs python3 (with PyYAML)" >&2
  exit 1
fi
PYTHONDONTWRITEBYTECODE=1 exec "$py" "$here/check.py" "$@"
