"""Shared fixtures: one small synthetic cohort per test session, generated once and reused read-only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

SMALL_COHORT_PATIENTS = 8
SMALL_COHORT_SEED = 7


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory) -> Path:
    """A cohort of a few patients (all views, all transfer syntaxes, the broken files). Do not modify it."""
    from echo_pipeline.synth.cohort import generate_cohort

    out = tmp_path_factory.mktemp("cohort")
    generate_cohort(out, patients=SMALL_COHORT_PATIENTS, seed=SMALL_COHORT_SEED, workers=2)
    return out
