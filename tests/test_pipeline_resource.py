"""PipelineResource carries every PipelineSettings field both ways, with its type, for any field added later."""

import dataclasses
import typing
from pathlib import Path

import pytest

from echo_pipeline.settings import PipelineSettings
from resources import PipelineResource


def _other_value(name: str, default, hint):
    """A value of the field's type that differs from its default (so a dropped field cannot pass)."""
    types = set(typing.get_args(hint)) | {typing.get_origin(hint) or hint}
    if Path in types:
        return Path("/elsewhere") / name
    if tuple in types and str in typing.get_args(hint):
        return (f"{name}-a", f"{name}-b")
    if tuple in types:
        return tuple(reversed(default)) if default and tuple(reversed(default)) != default else (0.5, 0.25, 0.25)
    if int in types:
        return 7 if default != 7 else 8
    if str in types:
        return f"{default}-other"
    pytest.fail(f"PipelineSettings.{name}: no test value for type {hint}; extend _other_value")


def test_every_settings_field_is_a_resource_field():
    assert {f.name for f in dataclasses.fields(PipelineSettings)} <= set(PipelineResource.model_fields)


def test_settings_round_trip_through_the_resource_with_every_field_changed():
    hints = typing.get_type_hints(PipelineSettings)
    changed = PipelineSettings(**{f.name: _other_value(f.name, f.default, hints[f.name])
                                  for f in dataclasses.fields(PipelineSettings)})
    assert all(getattr(changed, f.name) != f.default for f in dataclasses.fields(PipelineSettings))
    back = PipelineResource.from_settings(changed).settings
    assert back == changed
    assert all(type(getattr(back, f.name)) is type(getattr(changed, f.name)) for f in dataclasses.fields(back))


def test_optional_inputs_left_unset_stay_none():
    settings = PipelineSettings(view_labels_path=None, view_classifier_path=None, echonet_dynamic_root=None,
                                train_epochs=None)
    assert PipelineResource.from_settings(settings).settings == settings


def test_the_ui_definitions_bind_the_environment_variables_that_a_run_reads_when_it_starts(tmp_path, monkeypatch):
    import dagster as dg

    from definitions import build_definitions
    (tmp_path / "dicom").mkdir()
    for name in ("reports.csv", "view_labels.csv"):
        (tmp_path / name).write_text("id\n1\n")
    variables = {"ECHO_PIPELINE_DICOM_ROOT": tmp_path / "dicom", "ECHO_PIPELINE_REPORTS": tmp_path / "reports.csv",
                 "ECHO_PIPELINE_VIEW_LABELS": tmp_path / "view_labels.csv", "ECHO_PIPELINE_DATA_ROOT": tmp_path / "out"}
    for variable, value in variables.items():
        monkeypatch.setenv(variable, str(value))
    monkeypatch.setenv("ECHO_PIPELINE_SPLIT_FRACTIONS", "0.6,0.1,0.3")
    defs = build_definitions()
    resource = defs.resources["pipeline"]
    assert resource.reports_path == dg.EnvVar("ECHO_PIPELINE_REPORTS")  # the UI shows the variable, not the path
    assert resource.split_fractions == [0.6, 0.1, 0.3] and resource.model_preset == "echo-tiny"

    monkeypatch.setenv("ECHO_PIPELINE_REPORTS", str(tmp_path / "view_labels.csv"))  # changed after loading
    result = defs.resolve_job_def("observe_inputs").execute_in_process()
    [observation] = [e.event_specific_data.asset_observation for e in result.all_events
                     if e.is_asset_observation and e.asset_key == dg.AssetKey("reports_file")]
    assert observation.metadata["path"].value == str(tmp_path / "view_labels.csv")  # read when the run started
