#!/usr/bin/env bash
# Write ./.env for the demo: `dagster dev` and `dg dev`, started from the repository root, load it, so the UI runs
# on the demo's cohort, data root and patient split with no variable set by hand.
# Usage: scripts/write_dotenv.sh COHORT_DIR DATA_ROOT TRAIN,VAL,TEST. A .env you wrote yourself (without the first line
# below) is left alone.
set -euo pipefail
cohort=$1 data_root=$2 split=$3
marker="# Written by demo.sh (scripts/write_dotenv.sh): the demo's inputs for dagster dev. Edit or delete freely."
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
if [ -f .env ] && [ "$(head -n 1 .env)" != "$marker" ]; then
  echo "demo: .env exists and was not written by the demo; left as it is" >&2
  exit 0
fi
cat > .env <<ENV
$marker
DAGSTER_HOME=$PWD/.dagster_home
ECHO_PIPELINE_DICOM_ROOT=$(absolute "$cohort")/dicom
ECHO_PIPELINE_REPORTS=$(absolute "$cohort")/reports.csv
ECHO_PIPELINE_EVENTS=$(absolute "$cohort")/events.csv
ECHO_PIPELINE_VIEW_LABELS=$(absolute "$cohort")/view_labels.csv
ECHO_PIPELINE_DATA_ROOT=$(absolute "$data_root")
ECHO_PIPELINE_SPLIT_FRACTIONS=$split
ENV
