"""The same code location on Kubernetes: every step in its own pod, training under torchrun on a GPU pod.

Nothing here changes what an asset does. It takes the Definitions `definitions.build_definitions()` builds
and swaps two things (docs/scaling.md):
- the executor: `k8s_job_executor`, one Kubernetes Job per step, so a backfill of N shards runs N pods;
- the `pipes_client` resource: `TorchrunPipesK8sClient`, which starts the training entry point under
  `torchrun --nproc_per_node 8` in a pod on a GPU node instead of a local subprocess.
Every pod mounts the data root and the archive at the same paths, so the paths the assets write into Parquet
rows and Pipes extras mean the same thing in every pod.

Needs the `k8s` extra (`pip install -e ".[k8s]"`: dagster-k8s). Cluster names below (namespace, image,
claims, node labels) are examples; set them for your cluster, e.g. with the environment variables read here.
"""

import os
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_k8s import PipesK8sClient, k8s_job_executor

from definitions import build_definitions

NAMESPACE = os.environ.get("ECHO_PIPELINE_K8S_NAMESPACE", "echo-pipeline")
IMAGE = os.environ.get("ECHO_PIPELINE_IMAGE", "registry.example.org/echo-pipeline:0.1.0")
GPUS_PER_NODE = int(os.environ.get("ECHO_PIPELINE_GPUS_PER_NODE", "8"))

# The data root (Parquet, arrays, catalog) on a ReadWriteMany volume, the archive read-only; the same mount
# paths in every pod. ECHO_PIPELINE_DATA_ROOT=/data/out and ECHO_PIPELINE_DICOM_ROOT=/archive/dicom come from
# the config map, the pseudonymisation key from a secret (never from the image or the run config).
VOLUMES = [
    {"name": "data", "persistent_volume_claim": {"claim_name": "echo-pipeline-data"}},
    {"name": "archive", "persistent_volume_claim": {"claim_name": "echo-archive", "read_only": True}},
    {"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": "64Gi"}},  # DataLoader workers share memory
]
MOUNTS = [
    {"name": "data", "mount_path": "/data"},
    {"name": "archive", "mount_path": "/archive", "read_only": True},
]

STEP_EXECUTOR = k8s_job_executor.configured(
    {
        "job_namespace": NAMESPACE,
        "job_image": IMAGE,
        "image_pull_policy": "IfNotPresent",
        "env_config_maps": ["echo-pipeline-env"],  # ECHO_PIPELINE_* paths, shard count, thresholds
        "env_secrets": ["echo-pipeline-pseudonym-key"],  # ECHO_PIPELINE_PSEUDONYM_KEY
        "volumes": VOLUMES[:2],
        "volume_mounts": MOUNTS,
        "max_concurrent": 64,  # pods per run; the cluster's CPU quota is the real limit
        # A shard step (ingest, view predictions, masking) is CPU-bound: one pod with a few cores per shard.
        "step_k8s_config": {
            "container_config": {"resources": {"requests": {"cpu": "4", "memory": "16Gi"},
                                               "limits": {"cpu": "4", "memory": "16Gi"}}},
        },
        # Steps that need more than a shard step. The training step itself only waits for its GPU pod.
        "per_step_k8s_config": {
            "view_classifier": {"container_config": {"resources": {"requests": {"cpu": "8", "memory": "32Gi"}}}},
            "clip_embeddings": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
                                "pod_spec_config": {"node_selector": {"nvidia.com/gpu.present": "true"}}},
            "clip_model": {"container_config": {"resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}},
        },
    },
    name="echo_k8s_steps",
)


def gpu_pod_spec(gpus: int) -> dict[str, Any]:
    """Pod spec of the training pod: all GPUs of one node, the data root, shared memory for the loaders."""
    return {
        "restart_policy": "Never",
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": VOLUMES,
        "containers": [{
            "name": "train",
            "image": IMAGE,
            "env_from": [{"config_map_ref": {"name": "echo-pipeline-env"}}],
            "volume_mounts": MOUNTS + [{"name": "dshm", "mount_path": "/dev/shm"}],
            "resources": {"limits": {"nvidia.com/gpu": str(gpus), "cpu": str(12 * gpus), "memory": f"{120 * gpus}Gi"}},
        }],
    }


class TorchrunPipesK8sClient(PipesK8sClient):
    """Runs the module the training asset launches (`python -m MODULE`) as `torchrun ... -m MODULE` in a GPU pod.

    The asset stays unchanged: it passes its command, Pipes extras and environment as it does to the local
    subprocess client; only rank 0 of the torchrun processes talks back to Dagster (training/pipes_entry.py).
    """

    def __init__(self, gpus: int = GPUS_PER_NODE, namespace: str = NAMESPACE, **kwargs):
        super().__init__(**kwargs)
        self.gpus, self.namespace = gpus, namespace

    def torchrun_command(self, command: Sequence[str]) -> list[str]:
        module = command[list(command).index("-m") + 1]
        return ["torchrun", "--standalone", f"--nproc_per_node={self.gpus}", "-m", module]

    def run(self, *, context, command: Sequence[str] | None = None, extras: Mapping[str, Any] | None = None,
            env: Mapping[str, str] | None = None, **kwargs) -> dg.PipesClientCompletedInvocation:
        return super().run(
            context=context, extras=extras, env=env, image=IMAGE, namespace=self.namespace,
            command=self.torchrun_command(command or []), base_pod_spec=gpu_pod_spec(self.gpus), **kwargs,
        )


def build_k8s_definitions() -> dg.Definitions:
    """The project's Definitions with the Kubernetes step executor and the torchrun Pipes client."""
    base = build_definitions()
    return dg.Definitions(
        assets=base.assets, asset_checks=base.asset_checks, schedules=base.schedules, sensors=base.sensors,
        jobs=base.jobs, resources={**(base.resources or {}), "pipes_client": TorchrunPipesK8sClient()},
        executor=STEP_EXECUTOR,
    )


defs = build_k8s_definitions()
