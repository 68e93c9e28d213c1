"""The training process as Dagster launches it through Pipes: `python -m echo_pipeline.training.pipes_entry`.

The run configuration's path arrives in the Pipes extras (`config_path`). Each finished epoch is logged back
to the Dagster run, and the final materialization carries the per-epoch history and the chosen checkpoint.
Only `dagster_pipes` (a dependency-free protocol package) is imported, never the Dagster framework, so the
same entry runs on a GPU node or in a Kubernetes pod: swap the Pipes client, not this file. Under torchrun,
only rank 0 talks to Dagster; the other ranks train silently.
"""

from __future__ import annotations

import json
import os

from echo_pipeline.training import train_cli
from echo_pipeline.storage import file_sha256
from echo_pipeline.training.checkpoint import WEIGHTS_FILE


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def main() -> None:
    if _rank() != 0:
        train_cli.main(["--config", os.environ["ECHO_PIPELINE_TRAIN_CONFIG"]], report=lambda event: None)
        return
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        config_path = pipes.get_extra("config_path")
        history: list[dict] = []
        done: dict = {}

        def report(event: dict) -> None:
            if event.get("event") == "epoch":
                history.append({k: v for k, v in event.items() if isinstance(v, (int, float, str, bool))})
                pipes.log.info(
                    f"epoch {event['epoch']}/{event['epochs']}: train loss {event['train_loss']:.4f}, "
                    f"validation MCMRR {event['mcmrr']:.2f}{' (best so far)' if event['is_best'] else ''}, "
                    f"{event['samples_per_s']:.1f} samples/s"
                )
            elif event.get("event") == "done":
                done.update(event)

        train_cli.main(["--config", config_path], report=report)
        weights = os.path.join(done["best_checkpoint"], WEIGHTS_FILE)
        pipes.report_asset_materialization(metadata={
            "best_checkpoint": {"raw_value": done["best_checkpoint"], "type": "path"},
            "best_epoch": done["best_epoch"],
            "best_val_mcmrr": done["best_mcmrr"],
            "epochs_completed": done["epochs_completed"],
            "steps": done["step"],
            "checkpoint_sha256": file_sha256(weights),
            "history": {"raw_value": history, "type": "json"},
        })
        pipes.report_custom_message(json.dumps(done))


if __name__ == "__main__":
    main()
