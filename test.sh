#!/usr/bin/env bash
# Run the whole test suite, the same one CI runs: installs what it needs into ./.venv first, and Chromium
# for the UI screenshot tests (scripts/ci_system_deps.sh; it asks for sudo when not root). Extra arguments go
# to pytest, e.g. `./test.sh -m "not slow"` for the fast lane.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ci_system_deps.sh
source scripts/bootstrap.sh
exec pytest "$@"
