#!/usr/bin/env bash
# Run every benchmark in bench/ (installing the project first); each prints `name: value` lines with ratios
# against a baseline measured in the same run. Results also go to bench/results-<date>.txt.
# Run on an otherwise idle machine: the figures are wall-clock.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,bench source scripts/bootstrap.sh
out="bench/results-$(date +%Y%m%d-%H%M%S).txt"
for script in bench/bench_*.py; do
  echo "### $script" | tee -a "$out"
  python "$script" 2>&1 | tee -a "$out"
done
echo "figures written to $out"
