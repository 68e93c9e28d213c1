#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: Chromium, for the UI screenshot tests
# (tests/test_ui_e2e.py). Idempotent: does nothing when /usr/bin/chromium is already there. Where it cannot
# install (no root, no sudo, no apt-get), it says what to run and the suite goes on with those tests skipped.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=
elif command -v sudo >/dev/null; then
    SUDO=sudo
else
    SUDO=missing
fi
if [ "$SUDO" = missing ] || ! command -v apt-get >/dev/null; then
    echo "ci_system_deps: /usr/bin/chromium is missing and cannot be installed from here; the 4 UI screenshot" \
         "tests will be skipped. Install it with: sudo apt-get install chromium" >&2
    exit 0
fi
echo "==> installing Chromium for the UI screenshot tests (apt-get install chromium)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
