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
