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
data_root=${DATA_ROOT:-data/out}
# Synthetic data only: a fixed pseudonymisation key makes the patient split, hence the demo's figures, the same
# on every fresh data root. It goes into the data root's key file (not an environment variable) so that
# `dagster dev` on the same data root later uses it too. A real archive keeps a random, secret key.
key_file=$data_root/secrets/pseudonym.key
if [ ! -f "$key_file" ] && [ -z "${ECHO_PIPELINE_PSEUDONYM_KEY:-}" ]; then
  mkdir -p "$(dirname "$key_file")" && (umask 077 && echo synthetic-demo-cohort-not-a-secret > "$key_file")
fi
split=0.6,0.1,0.3
scripts/write_dotenv.sh "$cohort" "$data_root" "$split"  # `dagster dev` then opens on this cohort and data root
exec echo-pipeline run --dicom-root "$cohort/dicom" --reports "$cohort/reports.csv" --events "$cohort/events.csv" \
  --view-labels "$cohort/view_labels.csv" --data-root "$data_root" --split-fractions "$split"
