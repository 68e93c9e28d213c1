#!/usr/bin/env bash
# Create ./.venv (Python 3.11) and install the project into it; quiet when everything is already there.
# Sourced by demo.sh, test.sh and bench/run_all.sh so that each of them is one command on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
# Editable install with the test extra; pip resolves torch==2.14.1 from the local wheel cache, not the network.
EXTRAS=${EXTRAS:-test}
stamp=.venv/.echo-pipeline-installed-${EXTRAS//,/-}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing echo-pipeline[$EXTRAS] and its dependencies into .venv (first time: a few minutes)"
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export DAGSTER_DISABLE_TELEMETRY=1
