"""Model quality: the trained models must beat the untrained ones, through the real assets end to end.

The demo's synthetic cohort runs through `echo-pipeline run --select eval_summary` (ingestion, the view
classifier, masking, reports, splits, both tokenizers, training of both variants, embeddings, indexes and the
evaluation), and the test reads `eval_summary` from the DuckDB catalog. A change that breaks learning
anywhere along that chain (labels, links, masking, tokens, loss, checkpoint selection, embedding) leaves the
trained model at chance and fails here, where the fast tests (a step or two of training) cannot see it.

Size, measured on 2 shared cores (the smallest that learns is the demo's cohort, so the test runs exactly it):
- 80 patients (seed 0, 20 epochs, this split and key): retrieval does not learn. `bpe` train loss 3.47 -> 3.26
  (ln 32 = 3.47), validation MCMRR stays at chance, test MCMRR 17.9 [14.6, 21.6] vs untrained 19.9
  [17.2, 22.7] (n = 38 studies, chance 19.5); `template` 18.6 [15.9, 21.6] vs 18.9 [16.4, 21.6]: overlapping
  CIs, so a smaller cohort would fail spuriously. Its template LVEF MAE did beat untrained there (8.67 vs
  12.23), but retrieval, the headline, needs more distinct clips (docs/training.md).
  (14 patients, the fault tests' cohort, gives one optimisation step per epoch and n = 2 test studies.)
- 160 patients, seed 0, 20 epochs (the demo; docs/training.md): `bpe` 28.8 [24.9, 32.8] vs untrained 45.2
  [41.7, 48.6]; `template` 30.0 [25.1, 35.6] vs untrained 47.0 [42.9, 50.9] (n = 90, chance 45). Template
  LVEF MAE 8.70 vs untrained 11.18 (training mean 10.36); retraining with seeds 1 and 2 gave 9.01 and 9.52.
  `bpe` LVEF MAE (17.6 vs untrained 17.8) is no better than untrained, so only `template`'s is asserted.
The whole run takes about 8 minutes on 2 idle cores.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import echo_pipeline_cli
from echo_pipeline import catalog
from echo_pipeline.model_variants import MODEL_VARIANTS
from echo_pipeline.privacy import KEY_ENV_VAR
from echo_pipeline.storage import DataRoot
from echo_pipeline.synth.cohort import generate_cohort

pytestmark = pytest.mark.slow

# The demo's cohort and run (demo.sh): the smallest measured to learn (see the module docstring).
PATIENTS = 160
SEED = 0
EPOCHS = 20  # the echo-tiny preset's, given explicitly so a changed preset default shows up here
SPLIT = "0.6,0.1,0.3"  # n = 90 test studies: a bootstrap CI narrow enough to separate the two models
#: The demo's fixed pseudonymisation key: the patient split hashes the keyed patient ids, so this key gives the
#: demo's split and the figures measured on it.
KEY = "synthetic-demo-cohort-not-a-secret"


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict[tuple[str, str], dict]:
    """eval_summary's internal rows by (variant, model_kind), after one real run of the whole chain."""
    cohort = tmp_path_factory.mktemp("quality_cohort") / "cohort"
    generate_cohort(cohort, patients=PATIENTS, seed=SEED, workers=2, progress=False)
    data_root = tmp_path_factory.mktemp("quality_root")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("ECHO_PIPELINE_")] + ["DAGSTER_HOME"]:
            patch.delenv(name, raising=False)  # a developer's preset, epochs or shard count must not leak in
        patch.setenv(KEY_ENV_VAR, KEY)
        assert echo_pipeline_cli.main([
            "run", "--dicom-root", str(cohort / "dicom"), "--reports", str(cohort / "reports.csv"),
            "--view-labels", str(cohort / "view_labels.csv"), "--data-root", str(data_root),
            "--split-fractions", SPLIT, "--epochs", str(EPOCHS), "--select", "eval_summary",
        ]) == 0
    return internal_summary(data_root)


def internal_summary(data_root: Path) -> dict[tuple[str, str], dict]:
    with catalog.open_reader(DataRoot(data_root)) as con:
        frame = con.execute("SELECT * FROM eval_summary WHERE dataset = 'internal'").df()
    return {(row["variant"], row["model_kind"]): row for row in frame.to_dict("records")}


@pytest.mark.parametrize("variant", MODEL_VARIANTS)
def test_trained_retrieval_beats_untrained(summary, variant):
    """The trained model's MCMRR 95 % CI lies wholly below the untrained model's (same test studies)."""
    trained, untrained = summary[(variant, "trained")], summary[(variant, "untrained")]
    assert trained["n"] == untrained["n"] > 0
    assert trained["mcmrr_ci_high"] < untrained["mcmrr_ci_low"], (
        f"{variant}: trained MCMRR {trained['mcmrr']:.1f} [{trained['mcmrr_ci_low']:.1f}, "
        f"{trained['mcmrr_ci_high']:.1f}] does not lie below untrained {untrained['mcmrr']:.1f} "
        f"[{untrained['mcmrr_ci_low']:.1f}, {untrained['mcmrr_ci_high']:.1f}] (n = {trained['n']} studies)")


def test_template_lvef_beats_untrained(summary):
    """The template variant (EchoCLIP-R) predicts LVEF zero-shot better than its untrained twin. Not asserted
    for `bpe`: at this size a BPE model has not learned what its number tokens mean (docs/training.md)."""
    trained, untrained = summary[("template", "trained")], summary[("template", "untrained")]
    assert trained["lvef_mae"] < untrained["lvef_mae"], (
        f"template: trained LVEF MAE {trained['lvef_mae']:.2f} is not below untrained {untrained['lvef_mae']:.2f}")
