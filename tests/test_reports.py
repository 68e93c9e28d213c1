"""Reports core: reading/quarantine, linking with realistic key defects, label extraction, patient splits.

The cohort here is built in the test (physiology dicts → render_report → CSV/Parquet, plus a small fake
instances table with keyed hashes), so these tests do not depend on the DICOM generator.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from echo_pipeline.errors import InputContractError
from echo_pipeline.privacy import pseudonymise
from echo_pipeline.reports import (
    extract_labels,
    find_split_leaks,
    label_reports,
    link_coverage,
    link_reports,
    read_reports,
    split_studies,
    studies_without_report,
    study_index,
)
from echo_pipeline.schemas import REPORT_LABEL_NAMES
from echo_pipeline.synth.report_text import render_report

KEY = b"test-key"
LINEAGE = {"run_id": "run-test", "code_version": "0.0.test"}
SEV = ("none", "mild", "moderate", "severe")
EFF = ("none", "small", "moderate", "large")


def _physiology(rng: np.random.Generator) -> dict:
    effusion = EFF[rng.choice(4, p=[0.6, 0.2, 0.12, 0.08])]
    return {
        "lvef": float(rng.uniform(12, 78)), "pasp": float(rng.uniform(18, 85)),
        "pacemaker": bool(rng.random() < 0.25), "tavr": bool(rng.random() < 0.2), "mitraclip": bool(rng.random() < 0.2),
        **{k: SEV[rng.integers(4)] for k in ("lv_dilation", "la_dilation", "rv_dilation", "ra_dilation", "lvh")},
        "effusion": effusion, "tamponade": bool(effusion in ("moderate", "large") and rng.random() < 0.4),
    }


@pytest.fixture(scope="module")
def cohort():
    """~500 studies and their reports, with the linking defects of a real archive and the expected links."""
    rng = np.random.default_rng(7)
    studies, reports, expected = [], [], {}
    for p in range(260):
        patient_id = f"{p:07d}"
        first = dt.date(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 2000)))
        dates = [first + dt.timedelta(days=90 * i + int(rng.integers(0, 30))) for i in range(int(rng.integers(1, 4)))]
        if p % 40 == 0:  # two studies two days apart: a report dated between them is ambiguous by patient + date
            dates = [first, first + dt.timedelta(days=2)]
        for s, date in enumerate(dates):
            uid = f"1.2.826.0.1.{p}.{s}"
            studies.append({"study_instance_uid": uid, "accession_number": f"ACC{p:05d}{s}", "patient_id": patient_id,
                            "study_date": date, "close_pair": p % 40 == 0, **_physiology(rng)})
    for i, study in enumerate(studies):
        if i % 20 == 19:  # ~5 % of studies have no report
            continue
        report = {"report_id": f"R{i:05d}", "accession_number": study["accession_number"],
                  "study_instance_uid": study["study_instance_uid"], "patient_id": study["patient_id"],
                  "study_date": study["study_date"].isoformat()}
        defect = i % 10
        if defect == 1:  # blank accession, UID present
            report["accession_number"] = ""
        elif defect == 2:  # only patient + exact date
            report["accession_number"] = report["study_instance_uid"] = ""
        elif defect == 3 and not study["close_pair"]:  # only patient + date one day off (studies weeks apart)
            report["accession_number"] = report["study_instance_uid"] = ""
            report["study_date"] = (study["study_date"] + dt.timedelta(days=int(rng.choice([-1, 1])))).isoformat()
        text, stated = render_report(study, np.random.default_rng(1000 + i))
        reports.append({**report, "report_text": text})
        expected[report["report_id"]] = (study["study_instance_uid"], stated)
    for p in range(0, 260, 40):  # the ambiguous reports: dated between two studies of the same patient
        ambiguous_date = next(s["study_date"] for s in studies if s["patient_id"] == f"{p:07d}") + dt.timedelta(days=1)
        text, stated = render_report(_with_ids(rng), np.random.default_rng(p))
        reports.append({"report_id": f"AMB{p}", "accession_number": "", "study_instance_uid": "",
                        "patient_id": f"{p:07d}", "study_date": ambiguous_date.isoformat(), "report_text": text})
        expected[f"AMB{p}"] = ("ambiguous", stated)
    for o in range(25):  # orphans: unknown patients and keys, or a known patient on a date far from any study
        known = o % 5 == 0
        text, stated = render_report(_with_ids(rng), np.random.default_rng(5000 + o))
        reports.append({"report_id": f"ORPH{o}", "accession_number": f"ZZ{o:04d}", "study_instance_uid": f"9.9.{o}",
                        "patient_id": "0000001" if known else f"X{o:06d}",
                        "study_date": "2030-06-01", "report_text": text})
        expected[f"ORPH{o}"] = ("orphan", stated)
    instances = pd.DataFrame([
        {"study_instance_uid": s["study_instance_uid"], "patient_key": pseudonymise(s["patient_id"], KEY, "patient"),
         "accession_key": pseudonymise(s["accession_number"], KEY, "accession"), "study_date": s["study_date"],
         "sop_instance_uid": f"{s['study_instance_uid']}.{k}"}
        for s in studies for k in range(2)
    ])
    order = np.random.default_rng(3).permutation(len(reports))  # reports arrive in no particular order
    return {"studies": studies, "reports": pd.DataFrame([reports[j] for j in order]), "expected": expected,
            "instances": instances}


def _with_ids(rng) -> dict:
    return {"study_instance_uid": "", "accession_number": "", "patient_id": "x", "study_date": "2020-01-01",
            **_physiology(rng)}


@pytest.fixture(scope="module")
def pipeline(cohort, tmp_path_factory):
    path = tmp_path_factory.mktemp("reports") / "reports.csv"
    cohort["reports"].to_csv(path, index=False)
    reports, quarantine = read_reports(path, KEY, **LINEAGE)
    studies = study_index(cohort["instances"])
    links = link_reports(reports, studies, **LINEAGE)
    return {"path": path, "reports": reports, "quarantine": quarantine, "studies": studies, "links": links,
            "labels": label_reports(reports, links, **LINEAGE).labels}


def test_every_linkable_report_links_to_its_study_and_no_orphan_links(cohort, pipeline):
    links = pipeline["links"].to_pandas().set_index("report_id")
    assert pipeline["quarantine"].num_rows == 0
    assert len(links) == len(cohort["expected"])
    for report_id, (truth, _) in cohort["expected"].items():
        row = links.loc[report_id]
        if truth in ("orphan", "ambiguous"):
            assert pd.isna(row["study_instance_uid"]) and row["reason"] == truth, (report_id, row.to_dict())
        else:
            assert row["study_instance_uid"] == truth, (report_id, row.to_dict())
    assert (links.loc[[r for r, (t, _) in cohort["expected"].items() if t == "ambiguous"], "candidate_count"] == 2).all()
    coverage = link_coverage(pipeline["links"], studies_total=len(pipeline["studies"]))
    assert coverage["linked_by_study_instance_uid"] > 0 and coverage["linked_by_patient_date"] > 0
    assert coverage["linked_by_patient_date_window"] > 0 and coverage["orphan"] == 25
    assert coverage["ambiguous"] == len([r for r in cohort["expected"] if r.startswith("AMB")])


def test_studies_without_report_are_listed(cohort, pipeline):
    missing = studies_without_report(pipeline["links"], pipeline["studies"], **LINEAGE)
    reported = {truth for truth, _ in cohort["expected"].values()}
    assert set(missing.column("study_instance_uid").to_pylist()) == {
        s["study_instance_uid"] for s in cohort["studies"] if s["study_instance_uid"] not in reported}
    assert missing.num_rows > 0


def test_label_extraction_matches_what_the_text_states(cohort, pipeline):
    labels = pipeline["labels"].to_pandas().set_index("report_id")
    linked = [r for r, (t, _) in cohort["expected"].items() if t not in ("orphan", "ambiguous")]
    assert sorted(labels.index) == sorted(linked) and len(linked) >= 450
    generated = set(cohort["expected"][linked[0]][1])  # the labels the generator states truth for
    for label in [name for name in REPORT_LABEL_NAMES if name in generated]:
        stated = [(r, cohort["expected"][r][1][label]) for r in linked if cohort["expected"][r][1][label] is not None]
        correct = sum(_same(labels.loc[r, label], truth) for r, truth in stated)
        assert len(stated) > 20 and correct / len(stated) >= 0.99, (label, correct, len(stated))
        unstated = [r for r in linked if cohort["expected"][r][1][label] is None]
        assert all(pd.isna(labels.loc[r, label]) for r in unstated), label  # silence stays unknown
        has_value = labels[label].notna()
        assert labels.loc[has_value, f"{label}_source"].notna().all()


def _same(got, truth) -> bool:
    if isinstance(truth, float):
        return got is not None and abs(float(got) - truth) < 1e-6
    return got == truth


@pytest.mark.parametrize("sentence, label, value", [
    ("LVEF 55\u201360 %.", "lvef", 57.5),
    ("Normal systolic function, EF 55-60%.", "lvef", 57.5),
    ("The ejection fraction is 35 % with global hypokinesis.", "lvef", 35.0),
    ("Right ventricular systolic pressure is estimated at 41 mmHg.", "pasp", 41.0),
    ("Estimated PA systolic pressure is 42 mmHg assuming a right atrial pressure of 8 mmHg.", "pasp", 42.0),
    ("There is no pericardial effusion.", "effusion", "none"),
    ("A large circumferential pericardial effusion is present.", "effusion", "large"),
    ("There is no evidence of tamponade.", "tamponade", False),
    ("No device leads are seen.", "pacemaker", False),
    ("A pacemaker/ICD lead is seen in the right heart.", "pacemaker", True),
    ("Status post transcatheter aortic valve replacement (TAVR).", "tavr", True),
    ("MitraClip in place.", "mitraclip", True),
    ("The left atrium was moderately enlarged.", "la_dilation", "moderate"),
    ("There is severe biatrial enlargement.", "ra_dilation", "severe"),
    ("Mild concentric LVH.", "lvh", "mild"),
])
def test_rules_on_hand_written_sentences(sentence, label, value):
    assert extract_labels(sentence)[label][0] == value


def test_distractors_do_not_create_labels():
    text = ("Blood pressure: 130/80 mmHg. The IVC is dilated with less than 50% inspiratory collapse (RA pressure "
            "15 mmHg). The ascending aorta is mildly dilated. Paced rhythm. Mild pleural effusion.")
    found = extract_labels(text)
    assert found.pop("right_atrial_pressure")[0] == "significantly_elevated"  # the IVC sentence's own label
    assert all(value is None for value in found.values()), found


def test_reports_table_holds_no_raw_ids_and_parquet_reads_like_csv(cohort, pipeline, tmp_path):
    reports = pipeline["reports"]
    raw = set(cohort["reports"]["patient_id"]) | set(cohort["reports"]["accession_number"]) - {""}
    for table in (reports.drop_columns(["report_text"]), pipeline["links"], pipeline["labels"]):
        for column in table.column_names:
            assert not raw & set(map(str, table.column(column).to_pylist())), column
    parquet = tmp_path / "reports.parquet"
    cohort["reports"].to_parquet(parquet, index=False)
    from_parquet, _ = read_reports(parquet, KEY, **LINEAGE)
    assert from_parquet.drop_columns(["source_file"]).equals(reports.drop_columns(["source_file"]))


def test_bad_rows_are_quarantined_with_their_source_row(tmp_path):
    text = render_report(_with_ids(np.random.default_rng(0)), np.random.default_rng(0))[0]
    rows = pd.DataFrame([
        {"report_id": "a", "accession_number": "1", "patient_id": "p1", "study_date": "2020-01-01", "report_text": text},
        {"report_id": "b", "accession_number": "2", "patient_id": "p1", "study_date": "2020-01-02", "report_text": "  "},
        {"report_id": "c", "accession_number": "3", "patient_id": "p1", "study_date": "01/02/2020", "report_text": text},
        {"report_id": "a", "accession_number": "1", "patient_id": "p1", "study_date": "2020-01-01", "report_text": text},
        {"report_id": "d", "accession_number": "4", "patient_id": "p2", "study_date": "20200105", "report_text": text},
        {"report_id": "e", "accession_number": "5", "patient_id": "p2", "study_date": "2020-01-06", "report_text": "x"},
        {"report_id": "e", "accession_number": "6", "patient_id": "p2", "study_date": "2020-01-07", "report_text": "y"},
        {"report_id": "", "accession_number": "", "patient_id": "p3", "study_date": "", "report_text": text},
        {"report_id": "", "accession_number": "", "patient_id": "p3", "study_date": "2020-02-02", "report_text": text},
    ])
    path = tmp_path / "reports.csv"
    rows.to_csv(path, index=False)
    reports, quarantine = read_reports(path, KEY, **LINEAGE)
    reasons = dict(zip(quarantine.column("source_row").to_pylist(), quarantine.column("reason").to_pylist()))
    assert reasons == {1: "empty_text", 2: "bad_study_date", 3: "duplicate_report", 5: "conflicting_report_id",
                       6: "conflicting_report_id", 7: "no_link_key"}
    assert reports.column("source_row").to_pylist() == [0, 4, 8]
    assert reports.column("study_date").to_pylist()[1] == dt.date(2020, 1, 5)
    derived = reports.column("report_id").to_pylist()[2]
    assert derived.startswith("rpt_") and read_reports(path, KEY, **LINEAGE)[0].column("report_id")[2].as_py() == derived
    assert all("p1" not in m and "p2" not in m for m in quarantine.column("message").to_pylist())


def test_contract_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(InputContractError, match="does not exist"):
        read_reports(tmp_path / "nope.csv", KEY, **LINEAGE)
    no_text = tmp_path / "no_text.csv"
    pd.DataFrame({"accession_number": ["1"], "text": ["x"]}).to_csv(no_text, index=False)
    with pytest.raises(InputContractError, match=r"no_text\.csv.*'report_text'"):
        read_reports(no_text, KEY, **LINEAGE)
    no_key = tmp_path / "no_key.csv"
    pd.DataFrame({"patient_id": ["1"], "report_text": ["x"]}).to_csv(no_key, index=False)
    with pytest.raises(InputContractError, match="no linking key"):
        read_reports(no_key, KEY, **LINEAGE)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(InputContractError, match=r"broken\.parquet.*cannot be read"):
        read_reports(broken, KEY, **LINEAGE)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputContractError, match="cannot be read"):
        read_reports(empty, KEY, **LINEAGE)


def test_parquet_numeric_ids_hash_like_their_text(tmp_path):
    path = tmp_path / "numeric.parquet"
    pd.DataFrame({"patient_id": [1234567], "study_date": [pd.Timestamp("2021-03-04")], "report_text": ["LVEF 60%."]}).to_parquet(path)
    reports, _ = read_reports(path, KEY, **LINEAGE)
    assert reports.column("patient_key")[0].as_py() == pseudonymise("1234567", KEY, "patient")
    assert reports.column("study_date")[0].as_py() == dt.date(2021, 3, 4)


def test_splits_are_deterministic_by_patient_and_stable_when_patients_are_added(pipeline):
    studies = pipeline["studies"]
    first = split_studies(studies, seed=3, **LINEAGE)
    assert first.equals(split_studies(studies.sample(frac=1, random_state=1), seed=3, **LINEAGE))
    assert find_split_leaks(first) == []
    extra = pd.DataFrame([{"study_instance_uid": f"5.5.{i}", "patient_key": f"pat_new{i}", "accession_key": None,
                           "study_date": dt.date(2020, 1, 1)} for i in range(200)])
    grown = split_studies(pd.concat([studies, extra]), seed=3, **LINEAGE).to_pandas().set_index("study_instance_uid")
    before = first.to_pandas().set_index("study_instance_uid")
    assert (grown.loc[before.index, "split"] == before["split"]).all()
    other_seed = split_studies(studies, seed=4, **LINEAGE).column("split").to_pylist()
    assert other_seed != first.column("split").to_pylist()
    many = pd.DataFrame({"study_instance_uid": [str(i) for i in range(20000)], "patient_key": [f"p{i}" for i in range(20000)]})
    shares = split_studies(many, seed=0, **LINEAGE).to_pandas()["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.89) < 0.01 and abs(shares["test"] - 0.10) < 0.01 and 0.005 < shares["validation"] < 0.015


def test_split_leak_is_found_and_bad_fractions_refused(pipeline):
    splits = split_studies(pipeline["studies"], seed=0, **LINEAGE).to_pandas()
    patient = splits["patient_key"].value_counts().index[0]  # a patient with several studies
    row = splits.index[splits["patient_key"] == patient][0]
    splits.loc[row, "split"] = "test" if splits.loc[row, "split"] != "test" else "train"
    leaks = find_split_leaks(pa.Table.from_pandas(splits))
    assert [leak["patient_key"] for leak in leaks] == [patient]
    with pytest.raises(ValueError, match="sum to 1"):
        split_studies(pipeline["studies"], fractions={"train": 0.5, "test": 0.1}, **LINEAGE)


def test_render_report_is_deterministic_and_report_sized():
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    lengths = []
    for i in range(40):
        study = _with_ids(np.random.default_rng(i))
        text, stated = render_report(study, np.random.default_rng(i))
        assert (text, stated) == render_report(study, np.random.default_rng(i))
        assert set(stated) == set(REPORT_LABEL_NAMES)
        lengths.append(len(tokenizer.encode(text)))
    assert 300 <= np.mean(lengths) <= 650 and min(lengths) >= 200, lengths


def test_raw_patient_id_and_mrn_never_reach_report_text(tmp_path):
    from echo_pipeline.reports.reading import read_reports

    path = tmp_path / "reports.csv"
    pd.DataFrame([
        {"report_id": "r1", "patient_id": "PAT12345", "accession_number": "ACC998877", "study_date": "2020-01-02",
         "report_text": "MRN: PAT12345\nAccession ACC998877. The left ventricle is normal. EF 60%."},
        {"report_id": "r2", "patient_id": "PAT55555", "accession_number": "", "study_date": "2020-01-03",
         "report_text": "Medical record number 7654321. Normal study."},
    ]).to_csv(path, index=False)
    kept, _ = read_reports(path, b"k", run_id="r", code_version="c")
    texts = kept.column("report_text").to_pylist()
    assert "PAT12345" not in texts[0] and "ACC998877" not in texts[0] and "7654321" not in texts[1]
    assert texts[0].startswith("MRN: [PATIENT_ID]") and "[ACCESSION]" in texts[0]
    assert texts[1].startswith("Medical record number [REDACTED]")
    assert "EF 60%" in texts[0]  # ordinary numbers survive
