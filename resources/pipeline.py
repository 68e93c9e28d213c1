"""The one resource every asset uses: the input contract's paths and the data root.

Swapping storage (local disk today, object storage tomorrow) means swapping this resource.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import dagster as dg

from echo_pipeline.privacy import load_or_create_key
from echo_pipeline.settings import ARCHIVE_SPLIT_FRACTIONS, PipelineSettings
from echo_pipeline.storage import DataRoot


def _to_config(value):
    """A settings value as Dagster config: paths as strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


def _to_setting(value, hint):
    """A config value back as the settings field typed ``hint`` wants it (None stays None)."""
    if value is None:
        return None
    types = set(typing.get_args(hint)) | {typing.get_origin(hint) or hint}
    if Path in types:
        return Path(value)
    return tuple(value) if tuple in types else value


class PipelineResource(dg.ConfigurableResource):
    """Paths of the inputs (docs/input-contract.md) and of the data root holding every output.

    One config field per `PipelineSettings` field, of the same name (paths as strings, tuples as lists); the
    conversions both ways are derived from the dataclass's fields (tests/test_pipeline_resource.py checks that
    every settings field round-trips).
    """

    dicom_root: str
    reports_path: str
    events_path: str | None = None
    view_labels_path: str | None = None
    view_classifier_path: str | None = None
    echonet_dynamic_root: str | None = None
    data_root: str
    split_fractions: list[float] = list(ARCHIVE_SPLIT_FRACTIONS)
    model_preset: str = "echo-tiny"
    train_epochs: int | None = None

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> "PipelineResource":
        return cls(**{f.name: _to_config(getattr(settings, f.name)) for f in dataclasses.fields(PipelineSettings)})

    @property
    def settings(self) -> PipelineSettings:
        hints = typing.get_type_hints(PipelineSettings)
        return PipelineSettings(**{f.name: _to_setting(getattr(self, f.name), hints[f.name])
                                   for f in dataclasses.fields(PipelineSettings)})

    @property
    def store(self) -> DataRoot:
        return DataRoot(Path(self.data_root))

    def pseudonym_key(self) -> bytes:
        return load_or_create_key(self.settings.pseudonym_key_file)
