"""The `echo-pipeline` command refuses bad input with one line that names the problem and the fix."""

import pytest

import echo_pipeline_cli


def run_cli(capsys, *argv):
    code = echo_pipeline_cli.main(list(argv))
    return code, capsys.readouterr().err.strip()


def test_missing_dicom_root_is_one_line_error(tmp_path, capsys):
    reports = tmp_path / "reports.csv"
    reports.write_text("report_text,study_instance_uid\nx,1.2.3\n")
    code, err = run_cli(capsys, "run", "--dicom-root", str(tmp_path / "nope"), "--reports", str(reports))
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "dicom_root" in err and "does not exist" in err and "--dicom-root" in err


def test_reports_must_be_csv_or_parquet(tmp_path, capsys):
    reports = tmp_path / "reports.txt"
    reports.write_text("hello")
    code, err = run_cli(capsys, "run", "--dicom-root", str(tmp_path), "--reports", str(reports))
    assert code == 2 and "unsupported extension" in err and ".csv or .parquet" in err


def test_reports_directory_is_refused(tmp_path, capsys):
    code, err = run_cli(capsys, "run", "--dicom-root", str(tmp_path), "--reports", str(tmp_path))
    assert code == 2 and "is a directory" in err


def test_dicom_root_that_is_a_file_is_refused(tmp_path, capsys):
    reports = tmp_path / "reports.csv"
    reports.write_text("report_text\n")
    code, err = run_cli(capsys, "run", "--dicom-root", str(reports), "--reports", str(reports))
    assert code == 2 and "expected a directory" in err


def test_unknown_argument_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        echo_pipeline_cli.main(["run", "--bogus"])
    assert exit_info.value.code != 0


def test_missing_saved_view_classifier_names_the_flag(tmp_path, capsys):
    reports = tmp_path / "reports.csv"
    reports.write_text("report_text,study_instance_uid\nx,1.2.3\n")
    code, err = run_cli(capsys, "run", "--dicom-root", str(tmp_path), "--reports", str(reports),
                        "--view-classifier", str(tmp_path / "card.json"))
    assert code == 2 and len(err.splitlines()) == 1
    assert "card.json" in err and "no such file" in err and "--view-classifier" in err


def test_unknown_preset_is_refused_by_the_parser_with_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        echo_pipeline_cli.main(["run", "--dicom-root", str(tmp_path), "--reports", "r.csv", "--preset", "echoclip-xl"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "echo-tiny" in err and "echoclip-xl" in err


@pytest.mark.parametrize("epochs", ["0", "-3", "two"])
def test_epochs_below_one_are_refused_before_any_work(tmp_path, capsys, epochs):
    with pytest.raises(SystemExit) as exit_info:
        echo_pipeline_cli.main(["run", "--dicom-root", str(tmp_path), "--reports", "r.csv", "--epochs", epochs])
    assert exit_info.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_preset_from_the_environment_is_checked_by_settings_validation(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ECHO_PIPELINE_MODEL_PRESET", "no-such-preset")
    reports = tmp_path / "reports.csv"
    reports.write_text("report_text,study_instance_uid\nx,1.2.3\n")
    code, err = run_cli(capsys, "run", "--dicom-root", str(tmp_path), "--reports", str(reports))
    assert code == 2 and "no-such-preset" in err and "ECHO_PIPELINE_MODEL_PRESET" in err


def test_version_prints_the_installed_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        echo_pipeline_cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"echo-pipeline {version('echo-pipeline')}"


def test_help_lists_every_environment_variable_the_code_reads(capsys):
    """Every ECHO_PIPELINE_* name written anywhere in the code appears in `--help` (ENV_VAR_HELP is the list)."""
    import re
    from pathlib import Path

    root = Path(echo_pipeline_cli.__file__).parent
    sources = [*root.glob("echo_pipeline/**/*.py"), *root.glob("assets/*.py"), *root.glob("resources/*.py"),
               root / "definitions.py", root / "echo_pipeline_cli.py"]
    named = {name for path in sources for name in re.findall(r"\bECHO_PIPELINE_[A-Z_]+[A-Z]\b", path.read_text())}
    named.discard("ECHO_PIPELINE_TRAIN_CONFIG")  # set by clip_model for its own training subprocess, not by users
    with pytest.raises(SystemExit):
        echo_pipeline_cli.main(["--help"])
    help_text = capsys.readouterr().out
    assert named and not {name for name in named if name not in help_text}


def test_a_failed_run_prints_the_failing_steps_own_error(small_cohort, tmp_path, capsys):
    reports = tmp_path / "reports.csv"
    reports.write_text("some_column,another\n1,2\n")  # no report text column: the reports asset refuses it
    code = echo_pipeline_cli.main(["run", "--dicom-root", str(small_cohort / "dicom"), "--reports", str(reports),
                                   "--data-root", str(tmp_path / "out"), "--select", "reports"])
    reason = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1
    assert reason.startswith("echo-pipeline run: materialization of ")
    failed_step, _, error = reason.partition(" failed: ")[2].partition(": ")
    assert failed_step == "validated_reports"
    assert error.startswith("InputContractError: ") and "no 'report_text' column" in error


def _catalog_with_quarantine(tmp_path):
    """A data root holding one small real table (report_quarantine), as the reports stage writes it."""
    import pyarrow as pa

    from echo_pipeline.schemas import TABLES
    from echo_pipeline.storage import DataRoot

    store = DataRoot(tmp_path / "out")
    reasons = ["missing_text", "missing_text", "duplicate_report_id"]
    table = pa.table({"source_file": ["reports.csv"] * 3, "source_row": [2, 5, 9], "report_id": [None, "r5", "r9"],
                      "reason": reasons, "message": ["m"] * 3, "run_id": ["run"] * 3, "code_version": ["1"] * 3})
    store.write_table("report_quarantine", table.cast(TABLES["report_quarantine"]))
    return store


@pytest.mark.parametrize("output_format", ["table", "csv", "json"])
def test_sql_answers_the_readme_query_in_each_format(tmp_path, capsys, output_format):
    import json

    store = _catalog_with_quarantine(tmp_path)
    query = "SELECT reason, count(*) AS n FROM report_quarantine GROUP BY reason ORDER BY n DESC"
    code = echo_pipeline_cli.main(["sql", query, "--data-root", str(store.path), "--format", output_format])
    out = capsys.readouterr().out
    assert code == 0
    if output_format == "json":
        assert json.loads(out) == [{"reason": "missing_text", "n": 2}, {"reason": "duplicate_report_id", "n": 1}]
    elif output_format == "csv":
        assert out.splitlines() == ["reason,n", "missing_text,2", "duplicate_report_id,1"]
    else:
        assert "missing_text" in out and "(2 rows)" in out


def test_sql_refuses_writes_and_names_the_tables_on_errors(tmp_path, capsys):
    store = _catalog_with_quarantine(tmp_path)
    code, err = run_cli(capsys, "sql", "DROP VIEW report_quarantine", "--data-root", str(store.path))
    assert code == 2 and "read-only" in err
    code, err = run_cli(capsys, "sql", "SELECT * FROM no_such_table", "--data-root", str(store.path))
    assert code == 2 and "no_such_table" in err and "report_quarantine" in err
    code, err = run_cli(capsys, "sql", "SELECT 1", "--data-root", str(tmp_path / "empty"))
    assert code == 2 and "echo-pipeline run" in err
