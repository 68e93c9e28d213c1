"""The one resource every asset uses: the input contract's paths and the data root.

Swapping storage (local disk today, object storage tomorrow) means swapping this resource.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import dagster as dg

from echo_pipeline.privacy import load_or_create_key
from echo_pipeline.settings import ARCHIVE_SPLIT_FRACTIONS, ENV_VARS, PRESET_ENV_VAR, PipelineSettings
from echo_pipeline.source_paths import SourcePaths
from echo_pipeline.storage import DataRoot


def _to_config(value):
    """A settings value as Dagster config: paths as strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


#: Settings Dagster reads from their variable when a run starts (`dg.EnvVar`: string config fields). The split
#: fractions and the epochs are parsed and validated when the code location loads (PipelineSettings.from_env).
ENV_VAR_FIELDS = {**ENV_VARS, "model_preset": PRESET_ENV_VAR}


def _to_setting(value, hint):
    """A config value back as the settings field typed ``hint`` wants it (None stays None)."""
    if value is None:
        return None
    types = set(typing.get_args(hint)) | {typing.get_origin(hint) or hint}
    if Path in types:
        return Path(value)
    return tuple(value) if tuple in types else value


def _config_of(settings: PipelineSettings) -> dict:
    return {f.name: _to_config(getattr(settings, f.name)) for f in dataclasses.fields(PipelineSettings)}


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
    label_rules_path: str | None = None
    pretrained: list[str] = []  # NAME=DIR[,vocabulary=FILE][,preprocessing=P]: published models as variants
    init_from: list[str] = []  # DIR or VARIANT=DIR: clip_model starts from these weights
    prompts_path: str | None = None  # evaluation prompts (YAML or published JSON); None = prompts.yaml

    @classmethod
    def from_settings(cls, settings: PipelineSettings) -> "PipelineResource":
        return cls(**_config_of(settings))

    @classmethod
    def from_env(cls) -> "PipelineResource":
        """The resource of the UI and the daemon: each path and the preset bound to its `ECHO_PIPELINE_*`
        variable as a `dg.EnvVar` where the variable is set (the UI shows the variable's name, a run reads its
        value when it starts; `dagster dev` loads them from ./.env), the demo defaults otherwise."""
        bound = {name: dg.EnvVar(variable) for name, variable in ENV_VAR_FIELDS.items() if os.environ.get(variable)}
        return cls(**{**_config_of(PipelineSettings.from_env()), **bound})

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

    def source_paths(self) -> SourcePaths:
        """Resolves the pseudonymised relative_path of a table row to the archive file (restricted mapping)."""
        return SourcePaths(self.data_root, self.dicom_root)
