"""Dagster asset definitions, one module per stage; each stays a thin layer over `echo_pipeline`."""

from assets import embeddings, evaluation, ingestion, masking, reports, tokenization, training, views

STAGE_MODULES = [ingestion, views, reports, tokenization, masking, training, embeddings, evaluation]
