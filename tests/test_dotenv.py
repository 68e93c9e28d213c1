"""The demo's .env (scripts/write_dotenv.sh, run by demo.sh) is what `dagster dev` loads: parsed by Dagster's
own loader it gives the settings of the demo's cohort and data root; a user's own .env is never overwritten."""

import subprocess
from pathlib import Path

from dagster._core.secrets.env_file import get_env_var_dict

from echo_pipeline.settings import PipelineSettings

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "write_dotenv.sh"


def write(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "data/cohort", "data/out", "0.6,0.1,0.3"], cwd=folder,
                          capture_output=True, text=True, check=True)


def test_dagster_loads_the_demo_settings_from_the_written_env(tmp_path, monkeypatch):
    write(tmp_path)
    variables = get_env_var_dict(str(tmp_path))
    assert variables["DAGSTER_HOME"] == str(tmp_path / ".dagster_home")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = PipelineSettings.from_env()
    assert settings.dicom_root == tmp_path / "data" / "cohort" / "dicom"
    assert settings.reports_path == tmp_path / "data" / "cohort" / "reports.csv"
    assert settings.events_path == tmp_path / "data" / "cohort" / "events.csv"
    assert settings.view_labels_path == tmp_path / "data" / "cohort" / "view_labels.csv"
    assert settings.data_root == tmp_path / "data" / "out"
    assert settings.split_fractions == (0.6, 0.1, 0.3)
    write(tmp_path)  # the demo run again rewrites its own file
    assert get_env_var_dict(str(tmp_path)) == variables


def test_a_users_own_env_is_left_alone(tmp_path):
    (tmp_path / ".env").write_text("ECHO_PIPELINE_DATA_ROOT=/srv/echo\n")
    assert "left as it is" in write(tmp_path).stderr
    assert (tmp_path / ".env").read_text() == "ECHO_PIPELINE_DATA_ROOT=/srv/echo\n"
