"""Choose the clips the rest of the pipeline uses: predicted A4C, confident, grey-scale, moving (`a4c_clips`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa

from echo_pipeline.schemas import A4C_CLIPS

#: Why a clip is or is not in a4c_clips, in the order the rules are applied (the first that fails names it).
DECISIONS = {
    "not_decoded": "the clip could not be decoded for view prediction (view_predictions.error)",
    "colour_doppler": "colour-Doppler paint found: the model trains on grey-scale 2D clips only",
    "not_a4c": "the predicted view is not A4C",
    "low_probability": "predicted A4C, but p_a4c is below min_probability",
    "too_few_frames": "fewer than min_frames frames: a still or a loop too short to show a heartbeat",
    "kept": "in a4c_clips",
}


@dataclass(frozen=True)
class A4cFilter:
    """The thresholds of a4c_clips (docs/views.md explains the defaults)."""

    min_probability: float = 0.5  # ≥ 0.5 also makes A4C the argmax; raise it for precision, lower for recall
    min_frames: int = 10  # ~ a third of a heartbeat at 30 fps; the zero-shot evaluation samples up to 20 frames


def decide(prediction: dict, frames: int | None, rule: A4cFilter) -> str:
    """The DECISIONS code for one view_predictions row and the clip's frame count."""
    if prediction.get("error") is not None or prediction.get("view") is None:
        return "not_decoded"
    if prediction["is_colour"]:
        return "colour_doppler"
    if prediction["view"] != "A4C":
        return "not_a4c"
    if prediction["p_a4c"] < rule.min_probability:
        return "low_probability"
    if (frames or 1) < rule.min_frames:
        return "too_few_frames"
    return "kept"


def select_a4c(predictions: pa.Table, instances: pa.Table, rule: A4cFilter, *, run_id: str,
               code_version: str) -> tuple[pa.Table, Counter]:
    """(`a4c_clips` rows, count per DECISIONS code) for the predictions of one shard.

    ``instances`` are the shard's dicom_instances rows (ids, study, patient key, frames, frame rate).
    """
    by_uid = {row["sop_instance_uid"]: row for row in instances.to_pylist()}
    decisions: Counter = Counter()
    rows = []
    for prediction in predictions.to_pylist():
        instance = by_uid.get(prediction["sop_instance_uid"])
        if instance is None:  # removed from dicom_instances since the prediction was made
            continue
        decision = decide(prediction, instance.get("frames"), rule)
        decisions[decision] += 1
        if decision != "kept":
            continue
        rows.append({
            **{key: instance.get(key) for key in ("relative_path", "study_instance_uid", "series_instance_uid",
                                                   "patient_key", "study_date", "frames", "frame_rate")},
            "sop_instance_uid": prediction["sop_instance_uid"], "file_sha256": prediction["file_sha256"],
            "shard": prediction["shard"], "p_a4c": prediction["p_a4c"], "classifier_id": prediction["classifier_id"],
            "min_probability": rule.min_probability, "min_frames": rule.min_frames,
            "run_id": run_id, "code_version": code_version,
        })
    return pa.Table.from_pylist(rows, schema=A4C_CLIPS), decisions
