"""Dagster asset definitions, one module per stage; each stays a thin layer over `echo_pipeline`."""

from assets import (checks, embeddings, evaluation, ingestion, interpretation, masking, observations, reports, studies,
                    tokenization, training, views)

#: Every module whose assets and asset checks `definitions.py` loads: the observed inputs, the stages, the checks.
STAGE_MODULES = [observations, ingestion, views, reports, tokenization, masking, training, embeddings, studies, evaluation,
                 interpretation, checks]
