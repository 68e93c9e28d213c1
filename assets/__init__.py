"""Dagster asset definitions, one module per stage; each stays a thin layer over `echo_pipeline`."""

from assets import ingestion, reports, tokenization

STAGE_MODULES = [ingestion, reports, tokenization]
