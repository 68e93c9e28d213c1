#!/usr/bin/env bash
# The demo: install, generate the synthetic cohort under ./data/cohort (once), run every asset into ./data/out.
# PATIENTS=400 ./demo.sh makes a bigger cohort (in a fresh ./data/cohort-400). Budget: the whole chain in
# at most 10 minutes on 2 idle cores (160 patients, both model variants, the echo-tiny preset's epochs).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
PATIENTS=${PATIENTS:-160}
cohort=data/cohort; [ "$PATIENTS" = 160 ] || cohort=data/cohort-$PATIENTS
if [ ! -f "$cohort/reports.csv" ]; then
  echo-pipeline synth "$cohort" --patients "$PATIENTS" --seed 0
fi
exec echo-pipeline run --dicom-root "$cohort/dicom" --reports "$cohort/reports.csv" \
  --view-labels "$cohort/view_labels.csv" --data-root "${DATA_ROOT:-data/out}" --split-fractions 0.6,0.1,0.3
