"""Dagster resources: thin wrappers that hand the core its settings and storage."""

from resources.pipeline import PipelineResource

__all__ = ["PipelineResource"]
