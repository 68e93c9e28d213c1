"""The procedure-events input: a hand-written CSV with every kind of bad row, the asset with and without an
events file, and the synthetic cohort's events (planning only: no pixels)."""

import datetime as dt

import dagster as dg
import pandas as pd
import pytest

from assets.studies import validated_events
from echo_pipeline.errors import InputContractError
from echo_pipeline.privacy import pseudonymise
from echo_pipeline.settings import ENV_VAR_HELP, PipelineSettings
from echo_pipeline.storage import DataRoot
from echo_pipeline.studies import NO_EVENTS_NOTE, read_events
from echo_pipeline.synth.events import FIRST_AFTER
from echo_pipeline.synth.physiology import sample_patient, sample_study
from echo_pipeline.synth.plan import plan_cohort
from resources import PipelineResource

KEY = b"test-key"
# Written by hand from the contract (docs/input-contract.md), not by the generator.
EVENTS_CSV = """Patient_ID , Procedure,event_date
000123,heart_transplant,2020-03-04
000123,Cardiac Surgery,20200601
000777,TAVR,2021-01-02
,pacemaker,2021-01-02
000555,appendectomy,2021-01-02
000556,mitraclip,03/04/2021
000557,pacemaker,
000123,heart_transplant,2020-03-04
000558,"pacemaker,2021-01-02
000559,mitraclip,2022-02-02,extra
"""


def test_good_rows_are_kept_hashed_and_bad_rows_quarantined_with_reason_and_line(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(EVENTS_CSV)
    events, quarantine = read_events(path, KEY, run_id="r", code_version="c")
    assert events.column("procedure").to_pylist() == ["heart_transplant", "cardiac_surgery", "tavr"]
    assert events.column("event_date").to_pylist() == [dt.date(2020, 3, 4), dt.date(2020, 6, 1), dt.date(2021, 1, 2)]
    assert events.column("patient_key").to_pylist()[0] == pseudonymise("000123", KEY, "patient")  # leading zeros kept
    assert len(set(events.column("event_id").to_pylist())) == 3
    reasons = dict(zip(quarantine.column("source_row").to_pylist(), quarantine.column("reason").to_pylist()))
    assert reasons == {3: "missing_patient_id", 4: "unknown_procedure", 5: "bad_event_date", 6: "missing_event_date",
                       7: "duplicate_event", 8: "unclosed_quote", 9: "malformed_row"}
    lines = dict(zip(quarantine.column("source_row").to_pylist(), quarantine.column("line").to_pylist()))
    assert lines[3] == 5 and lines[9] == 11  # header on line 1, data row 0 on line 2
    stored = events.to_pandas().to_csv() + quarantine.to_pandas().to_csv()
    for raw in ("000123", "000777", "000555", "03/04/2021"):
        assert raw not in stored  # neither raw ids nor raw field values are kept


def test_a_file_without_the_required_columns_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("patient_id,when\n1,2020-01-01\n")
    with pytest.raises(InputContractError, match="'procedure', 'event_date'"):
        read_events(path, KEY, run_id="r", code_version="c")
    with pytest.raises(InputContractError, match="does not exist"):
        read_events(tmp_path / "missing.csv", KEY, run_id="r", code_version="c")


def test_parquet_events_with_a_date_column_are_read_too(tmp_path):
    path = tmp_path / "events.parquet"
    pd.DataFrame({"patient_id": ["A1", "A2"], "procedure": ["pacemaker", "tavr"],
                  "date": [pd.Timestamp("2020-01-01"), pd.NaT]}).to_parquet(path)
    events, quarantine = read_events(path, KEY, run_id="r", code_version="c")
    assert events.num_rows == 1 and quarantine.column("reason").to_pylist() == ["missing_event_date"]
    assert quarantine.column("line").to_pylist() == [None]


def test_events_setting_is_documented_and_validated(tmp_path):
    assert "ECHO_PIPELINE_EVENTS" in ENV_VAR_HELP
    settings = PipelineSettings(dicom_root=tmp_path, reports_path=tmp_path / "r.csv", view_labels_path=None,
                                events_path=tmp_path / "nope.csv")
    (tmp_path / "r.csv").write_text("report_text,accession_number\nx,1\n")
    with pytest.raises(InputContractError, match="--events / ECHO_PIPELINE_EVENTS"):
        settings.validate()


@pytest.mark.parametrize("configured", [True, False])
def test_the_asset_writes_events_or_empty_tables_with_a_note(tmp_path, configured):
    path = tmp_path / "events.csv"
    path.write_text(EVENTS_CSV)
    store = DataRoot(tmp_path / "data")
    resource = PipelineResource(dicom_root=str(tmp_path), reports_path=str(tmp_path / "r.csv"),
                                data_root=str(store.path), events_path=str(path) if configured else None)
    result = dg.materialize([validated_events], resources={"pipeline": resource})
    assert store.read_table("procedure_events").num_rows == (3 if configured else 0)
    assert store.read_table("event_quarantine").num_rows == (7 if configured else 0)
    [event] = [m for m in result.asset_materializations_for_node("validated_events")
               if m.asset_key.to_user_string() == "procedure_events"]
    assert ("note" in event.metadata) != configured
    if not configured:
        assert event.metadata["note"].value == NO_EVENTS_NOTE


def test_synthetic_events_change_later_studies_unless_told_not_to():
    changed, null = plan_cohort(60, 5), plan_cohort(60, 5, events_change_anatomy=False)
    assert changed.events and [e["event"] for e in changed.events] == [e["event"] for e in null.events]
    by_uid = {s["study_instance_uid"]: s for s in changed.studies}
    shifted = 0
    for entry in null.events:
        patient, event = entry["patient"], entry["event"]
        dates = event["study_dates"]
        assert dates[0] < dates[1] < event["event_date"] < dates[2] and (dates[2] - dates[0]).days <= 400
        assert all(abs((d - event["event_date"]).days) <= 200 for d in dates)
        for j, date in enumerate(dates):
            drawn = sample_study(5, patient, j, date)
            null_study = next(s for s in null.studies if s["study_instance_uid"] == drawn["study_instance_uid"])
            assert null_study == drawn  # the null cohort: studies as if nothing happened
            if j < FIRST_AFTER:
                assert by_uid[drawn["study_instance_uid"]] == null_study  # before the event: unchanged
            else:
                shifted += by_uid[drawn["study_instance_uid"]] != null_study
    assert shifted >= len(null.events) - 2  # almost every after-event study differs (a device may be there already)
    without = [p for p in changed.patients if p["index"] not in {e["patient"]["index"] for e in changed.events}]
    assert all(p == sample_patient(5, p["index"]) for p in without)
