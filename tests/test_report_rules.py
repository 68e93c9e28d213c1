"""Report labels on phrasing no one here generated: the corpus, assertion status, site rules, the gap table.

The corpus (tests/corpora/label_corpus.tsv) is written from standard echo reporting language, not from the
synthetic generator. Site rules go through the real entry points: a Dagster materialization of the labelling
asset with the resource's `label_rules_path`, and `echo-pipeline run --label-rules`.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from echo_pipeline.reports import extract_labels, label_reports, labelling_code_version, load_label_rules
from echo_pipeline.reports.extract import LabelExtractor
from echo_pipeline.reports.gaps import sentence_shape
from echo_pipeline.reports.rules import LabelRulesError
from echo_pipeline.schemas import REPORT_LABEL_NAMES, REPORT_LINKS, REPORTS
from echo_pipeline.storage import DataRoot

CORPUS = Path(__file__).parent / "corpora" / "label_corpus.tsv"
HYPOTHETICAL_SECTION = "# --- recommendations and hypotheticals"


def _parse(value: str):
    if value in ("true", "false"):
        return value == "true"
    try:
        return float(value)
    except ValueError:
        return value


def _corpus() -> list[tuple[str, dict, bool]]:
    """(text, expected labels, whether the line is in the hypotheticals section)."""
    cases, hypothetical = [], False
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            hypothetical = hypothetical or line.startswith(HYPOTHETICAL_SECTION)
            hypothetical = hypothetical and not line.startswith("# --- a second batch")
            continue
        text, expected = line.split("\t")
        pairs = [] if expected == "-" else [pair.split("=") for pair in expected.split("; ")]
        labels = {label: _parse(value) for label, value in pairs}
        assert set(labels) <= set(REPORT_LABEL_NAMES), labels
        cases.append((text.replace("\\n", "\n"), labels, hypothetical))
    return cases


def test_corpus_recall_and_precision_are_at_least_99_percent():
    cases = _corpus()
    assert len(cases) >= 300
    covered = {label for _, labels, _ in cases for label in labels}
    assert covered == set(REPORT_LABEL_NAMES)  # every label, including the five new ones
    right = stated = predicted = 0
    misses = []
    for text, expected, _ in cases:
        got = {label: hit[0] for label, hit in extract_labels(text).items() if hit is not None}
        stated += len(expected)
        predicted += len(got)
        right += sum(label in got and got[label] == value for label, value in expected.items())
        if got != expected:
            misses.append((text, expected, got))
    recall, precision = right / stated, right / predicted
    assert recall >= 0.99 and precision >= 0.99, (recall, precision, misses[:10])


def test_hypothetical_and_recommendation_sentences_state_nothing():
    hypothetical = [text for text, _, section in _corpus() if section]
    assert len(hypothetical) >= 15
    for text in hypothetical:
        assert all(hit is None for hit in extract_labels(text).values()), text


@pytest.mark.parametrize("text, label, value", [
    ("No pericardial effusion.", "effusion", "none"),  # negated -> the explicit negative
    ("No TAVR.", "tavr", False),
    ("Cannot rule out pericardial effusion.", "effusion", None),  # uncertain -> unknown
    ("Evaluate for pericardial effusion.", "effusion", None),  # hypothetical -> unknown
    ("History of atrial fibrillation.", "atrial_fibrillation", None),  # history of AF is not this study's rhythm
    ("Status post TAVR.", "tavr", True),  # but a device placed in the past is still there
])
def test_assertion_status_decides_the_value(text, label, value):
    hit = extract_labels(text)[label]
    assert (hit[0] if hit else None) == value


def _reports(texts: dict[str, str]) -> tuple[pa.Table, pa.Table]:
    lineage = {"run_id": "r", "code_version": "c"}
    reports = pa.Table.from_pylist([
        {"report_id": rid, "source_file": "reports.csv", "source_row": i, "study_instance_uid": f"1.2.{i}",
         "patient_key": f"pat_{i:020x}", "report_text": text, **lineage} for i, (rid, text) in enumerate(texts.items())
    ], schema=REPORTS)
    links = pa.Table.from_pylist([
        {"report_id": rid, "study_instance_uid": f"1.2.{i}", "patient_key": f"pat_{i:020x}",
         "link_method": "study_instance_uid", "candidate_count": 1, **lineage} for i, rid in enumerate(texts)
    ], schema=REPORT_LINKS)
    return reports, links


def test_assertion_statuses_are_counted_and_uncovered_sentences_reach_the_gap_table():
    reports, links = _reports({
        "a": "Cannot rule out pericardial effusion. The left atrium measures 4.1 cm. LVEF 55%.",
        "b": "Evaluate for pericardial effusion. The left atrium measures 3.9 cm.",
    })
    result = label_reports(reports, links, run_id="r", code_version="c")
    assert result.statuses[("effusion", "uncertain")] == 1 and result.statuses[("effusion", "hypothetical")] == 1
    assert result.labels.column("effusion").to_pylist() == [None, None]
    gaps = result.gaps.to_pylist()
    la = [g for g in gaps if g["label"] == "la_dilation"]
    assert [(g["sentence_shape"], g["sentence_count"], g["report_count"], g["example_report_id"]) for g in la] == [
        ("the left atrium measures # cm.", 2, 2, "a")]
    assert not [g for g in gaps if g["label"] == "effusion"]  # uncertain/hypothetical are counted, not gaps
    assert sentence_shape("LVEF 55% on 2020-01-02, id R12345.") == "lvef # on #, id #."


SITE_RULES = """\
labels:
  la_dilation:
    targets: [left auricle]
  effusion:
    targets: [pericardial collection]
    self_findings: [pericardial collection]
"""

SITE_TEXTS = {
    "r1": "The left auricle is moderately dilated. LVEF 40%.",
    "r2": "Small pericardial collection. No LVH.",
    "r3": "The left atrium is mildly dilated. RVSP 30 mmHg. The left atrium measures 4.1 cm.",
}


def _materialize(tmp_path: Path, rules_path: Path | None, name: str) -> tuple[pa.Table, str]:
    """The `report_labels` table and the gap asset's top-20 markdown, from a real Dagster run."""
    from assets.reports import labelled_reports
    from resources import PipelineResource

    root = tmp_path / name
    store = DataRoot(root)
    reports, links = _reports(SITE_TEXTS)
    store.write_table("reports", reports)
    store.write_table("report_links", links)
    pipeline = PipelineResource(dicom_root=str(tmp_path), reports_path=str(tmp_path / "reports.csv"),
                                data_root=str(root), label_rules_path=str(rules_path) if rules_path else None)
    result = dg.materialize([labelled_reports], resources={"pipeline": pipeline})
    assert result.success
    gaps = next(e.materialization.metadata["top_20_gaps"].value for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "report_label_gaps")
    return store.read_table("report_labels"), gaps


def test_site_rules_change_exactly_the_affected_labels(tmp_path):
    site = tmp_path / "site_rules.yaml"
    site.write_text(SITE_RULES)
    before, gaps = _materialize(tmp_path, None, "default")
    before = before.to_pandas().set_index("report_id")
    after = _materialize(tmp_path, site, "site")[0].to_pandas().set_index("report_id")
    assert "the left atrium measures # cm." in gaps  # no rule reads a diameter: the UI shows it
    changed = {(rid, column) for rid in before.index for column in before.columns
               if column not in ("run_id",) and str(before.at[rid, column]) != str(after.at[rid, column])}
    default_sha, site_sha = load_label_rules().sha256, load_label_rules(site).sha256
    assert changed == {("r1", "la_dilation"), ("r1", "la_dilation_source"), ("r2", "effusion"),
                       ("r2", "effusion_source")} | {(rid, "label_rules_sha256") for rid in SITE_TEXTS}
    assert after.at["r1", "la_dilation"] == "moderate" and after.at["r2", "effusion"] == "small"
    assert set(before["label_rules_sha256"]) == {default_sha} and set(after["label_rules_sha256"]) == {site_sha}
    assert labelling_code_version(load_label_rules(site)) != labelling_code_version(load_label_rules())


@pytest.mark.parametrize("text, line, reason", [
    ("labels:\n  lvef:\n    targets: [EF\n", 4, "not valid YAML"),
    ("labels:\n  lvef_typo:\n    targets: [EF]\n", 2, "unknown label 'lvef_typo'"),
    ("labels:\n  lvef:\n    targets:\n      - EF\n      - 're:([unclosed'\n", 5, "does not compile"),
    ("labels:\n  la_dilation:\n    kind: fuzzy\n", 3, "kind must be one of"),
    ("context:\n  negated:\n    sideways: [nope]\n", 3, "direction must be one of"),
    ("labels:\n  pasp:\n    valid: [low, 100]\n", 3, "expected [low, high] numbers"),
    ("unspecified_grade:\n  chamber: huge\n", 2, "mapped to null or one of its grades"),
])
def test_malformed_site_rules_are_refused_with_the_line_and_the_reason(tmp_path, text, line, reason):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LabelRulesError, match=rf"bad\.yaml, line {line}\b.*{re.escape(reason)}"):
        load_label_rules(path)


def test_cli_refuses_malformed_label_rules_before_any_work(tmp_path, capsys):
    from echo_pipeline_cli import main

    (tmp_path / "dicom").mkdir()
    (tmp_path / "reports.csv").write_text("report_text,accession_number\nLVEF 50%.,1\n")
    bad = tmp_path / "site.yaml"
    bad.write_text("labels:\n  effusion:\n    targets: [effusion, 42]\n")
    code = main(["run", "--dicom-root", str(tmp_path / "dicom"), "--reports", str(tmp_path / "reports.csv"),
                 "--data-root", str(tmp_path / "out"), "--label-rules", str(bad)])
    assert code == 2
    assert "site.yaml, line 3" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_site_file_extends_lists_and_the_hash_follows_the_effective_rules(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("labels:\n  lvef:\n    targets: [EF]\n")  # already a default target: nothing changes
    assert load_label_rules(site).sha256 == load_label_rules().sha256
    site.write_text("labels:\n  lvef:\n    targets: [systolic performance index]\n")
    rules = load_label_rules(site)
    assert rules.sha256 != load_label_rules().sha256
    assert LabelExtractor(rules).extract("Systolic performance index 45%.").values["lvef"][0] == 45.0


def test_every_zero_shot_prompt_states_its_own_task():
    """The evaluation's prompts are report sentences of a real template: each must carry its task's label."""
    from echo_pipeline.evaluation.prompts import load_prompts

    prompts = load_prompts()
    for name, task in prompts.binary_tasks.items():
        for text in task.prompts:
            hit = extract_labels(text)[task.label]
            assert hit is not None and hit[0] in task.positive, (name, text, hit)
    for name, task in prompts.regression_tasks.items():
        for template in task.templates:
            text = template.replace("{value}", "45")
            assert extract_labels(text)[task.label][0] == 45.0, (name, text)
