"""The code location loads, validates with Dagster's own CLI, and has the asset names users rely on."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import definitions

REPO = Path(__file__).resolve().parents[1]


def test_definitions_load_with_expected_assets():
    graph = definitions.defs.resolve_asset_graph()
    names = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {"dicom_instances", "ingest_quarantine"} <= names


def test_dagster_definitions_validate_accepts_the_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1"}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "echo_pipeline" in result.stdout + result.stderr


def test_core_imports_no_dagster():
    """`echo_pipeline/` must stay usable without Dagster (notebooks, torchrun jobs).

    `dagster_pipes`, the dependency-free protocol package an external process uses to talk back to Dagster,
    is allowed: it does not bring the framework in.
    """
    framework_import = re.compile(r"^\s*(import|from)\s+dagster(\s|\.|$)")
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "echo_pipeline").rglob("*.py")
        if any(framework_import.match(line) for line in path.read_text().splitlines())
    ]
    assert offenders == []


def _dg(*args: str, tmp_path) -> subprocess.CompletedProcess:
    """The dg CLI ([tool.dg] in pyproject.toml) of the running environment, from the repository root."""
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1",
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([str(bin_dir / "dg"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def test_dg_check_defs_accepts_the_project(tmp_path):
    result = _dg("check", "defs", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_lists_the_assets_and_the_automation(tmp_path):
    result = _dg("list", "defs", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert {"dicom_root", "dicom_instances", "clip_model", "eval_summary"} <= set(assets)
    assert assets["dicom_instances"]["automation_condition"]["label"] == "on input or code change"
    assert [s["name"] for s in listed["sensors"]] == ["pipeline_automation"]
    assert [s["name"] for s in listed["schedules"]] == ["input_observation"]
