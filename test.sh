#!/usr/bin/env bash
# Run the whole test suite: installs what it needs into ./.venv first. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec pytest "$@"
