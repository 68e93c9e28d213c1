"""The Kubernetes flavour of the code location (deploy/k8s) loads, validates and builds a well-formed GPU pod.

Needs the optional `k8s` extra (dagster-k8s); skipped without it. No cluster is contacted.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("dagster_k8s") is None,
                                reason="dagster-k8s is not installed (optional extra: pip install -e '.[k8s]')")


@pytest.fixture(scope="module")
def k8s():
    """deploy/k8s/definitions_k8s.py, imported from its file (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("definitions_k8s", REPO / "deploy" / "k8s" / "definitions_k8s.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dagster_definitions_validate_accepts_the_k8s_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DAGSTER_DISABLE_TELEMETRY": "1"}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", "deploy/k8s/workspace.yaml"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "echo_pipeline_k8s" in result.stdout + result.stderr


def test_k8s_definitions_keep_the_assets_and_run_steps_in_pods(k8s):
    import dagster as dg

    import definitions

    local = {key.to_user_string() for key in definitions.defs.resolve_asset_graph().get_all_asset_keys()}
    remote = {key.to_user_string() for key in k8s.defs.resolve_asset_graph().get_all_asset_keys()}
    assert remote == local
    job = k8s.defs.resolve_job_def("observe_inputs")
    assert job.executor_def.name == "echo_k8s_steps"
    # `definitions validate` does not look inside executor config; resolving a run config does.
    execution = dg.validate_run_config(job, {})["execution"]["echo_k8s_steps"]
    assert execution["job_namespace"] == k8s.NAMESPACE and execution["max_concurrent"] > 1


def test_training_runs_under_torchrun_in_a_gpu_pod(k8s):
    from dagster_k8s.pipes import build_pod_body

    client = k8s.TorchrunPipesK8sClient(gpus=8)
    command = client.torchrun_command([sys.executable, "-m", "echo_pipeline.training.pipes_entry"])
    assert command == ["torchrun", "--standalone", "--nproc_per_node=8", "-m", "echo_pipeline.training.pipes_entry"]
    pod = build_pod_body("train", k8s.IMAGE, command, {"ECHO_PIPELINE_TRAIN_CONFIG": "/data/out/config.json"}, None,
                         k8s.gpu_pod_spec(8))
    container = pod.spec.containers[0]
    assert container.command == command and container.resources.limits["nvidia.com/gpu"] == "8"
    assert {m.mount_path for m in container.volume_mounts} >= {"/data", "/archive", "/dev/shm"}
    assert pod.spec.restart_policy == "Never"
