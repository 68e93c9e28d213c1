"""The one resource every asset uses: the input contract's paths and the data root.

Swapping storage (local disk today, object storage tomorrow) means swapping this resource.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from echo_pipeline.privacy import load_or_create_key
from echo_pipeline.settings import ARCHIVE_SPLIT_FRACTIONS, PipelineSettings
from echo_pipeline.source_paths import SourcePaths
from echo_pipeline.storage import DataRoot


class PipelineResource(dg.ConfigurableResource):
    """Paths of the inputs (docs/input-contract.md) and of the data root holding every output."""

    dicom_root: str
    reports_path: str
    view_labels_path: str | None = None
    view_classifier_path: str | None = None
    echonet_dynamic_root: str | None = None
    data_root: str
    split_fractions: list[float] = list(ARCHIVE_SPLIT_FRACTIONS)
    model_preset: str = "echo-tiny"
    train_epochs: int | None = None

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> "PipelineResource":
        optional = lambda value: None if value is None else str(value)  # noqa: E731
        return cls(
            dicom_root=str(settings.dicom_root),
            reports_path=str(settings.reports_path),
            view_labels_path=optional(settings.view_labels_path),
            view_classifier_path=optional(settings.view_classifier_path),
            echonet_dynamic_root=optional(settings.echonet_dynamic_root),
            data_root=str(settings.data_root),
            split_fractions=list(settings.split_fractions),
            model_preset=settings.model_preset,
            train_epochs=settings.train_epochs,
        )

    @property
    def settings(self) -> PipelineSettings:
        optional = lambda value: None if value is None else Path(value)  # noqa: E731
        return PipelineSettings(
            dicom_root=Path(self.dicom_root),
            reports_path=Path(self.reports_path),
            view_labels_path=optional(self.view_labels_path),
            view_classifier_path=optional(self.view_classifier_path),
            echonet_dynamic_root=optional(self.echonet_dynamic_root),
            data_root=Path(self.data_root),
            split_fractions=tuple(self.split_fractions),
            model_preset=self.model_preset,
            train_epochs=self.train_epochs,
        )

    @property
    def store(self) -> DataRoot:
        return DataRoot(Path(self.data_root))

    def pseudonym_key(self) -> bytes:
        return load_or_create_key(self.settings.pseudonym_key_file)

    def source_paths(self) -> SourcePaths:
        """Resolves the pseudonymised relative_path of a table row to the archive file (restricted mapping)."""
        return SourcePaths(self.data_root, self.dicom_root)
