#!/usr/bin/env bash
# Create ./.venv with a supported Python (pyproject's requires-python) and install the project into it; quiet
# when everything is already there. A .venv made with another Python is rebuilt, not patched over.
# Sourced by demo.sh, test.sh and bench/run_all.sh so that each of them is one command on a fresh clone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
# The supported range, read from pyproject.toml so that there is one place to change it.
supported() {  # supported PYTHON_EXECUTABLE -> exit 0 when its version is inside requires-python
  "$1" - <<'PY'
import re, sys
spec = re.search(r'requires-python\s*=\s*"([^"]+)"', open("pyproject.toml").read()).group(1)
version = sys.version_info[:2]
def ok(clause):
    op, number = re.match(r"\s*(>=|<=|==|<|>)\s*([\d.]+)", clause).groups()
    bound = tuple(int(p) for p in number.split(".")[:2])
    return {">=": version >= bound, "<": version < bound, "<=": version <= bound, ">": version > bound,
            "==": version == bound}[op]
sys.exit(0 if all(ok(c) for c in spec.split(",")) else 1)
PY
}
if ! supported "$PYTHON"; then
  echo "bootstrap: $("$PYTHON" --version) is outside pyproject.toml's requires-python;" \
       "set PYTHON=/path/to/python3.11 and run again" >&2
  exit 1
fi
if [ -x .venv/bin/python ] && ! supported .venv/bin/python; then
  echo "==> .venv was made with $(.venv/bin/python --version), which this project does not support: rebuilding it"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
# Editable install with the test extra, within constraints.txt (the versions the demo's figures were measured
# with); pip resolves torch==2.14.1 from the local wheel cache, not the network.
EXTRAS=${EXTRAS:-test}
stamp=.venv/.echo-pipeline-installed-${EXTRAS//,/-}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "==> installing echo-pipeline[$EXTRAS] and its dependencies into .venv (first time: a few minutes)"
  .venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$EXTRAS]"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export DAGSTER_DISABLE_TELEMETRY=1
