"""Agreement of the A4C filter with a synthetic cohort's ground truth (truth/clips.parquet beside dicom/).

The clips the pipeline should keep are the truth's grey-scale A4C clips; colour-Doppler A4C clips must go.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq


def find_truth(dicom_root: str | Path) -> Path | None:
    """truth/clips.parquet beside a synthetic cohort's dicom/ folder, when there is one."""
    path = Path(dicom_root).parent / "truth" / "clips.parquet"
    return path if path.is_file() else None


def load_truth(clips_parquet: str | Path) -> dict[str, tuple[str, bool]]:
    """sop_instance_uid → (true view, is colour Doppler)."""
    table = pq.read_table(clips_parquet, columns=["sop_instance_uid", "view", "is_colour"])
    uids, views, colour = (table.column(c).to_pylist() for c in ("sop_instance_uid", "view", "is_colour"))
    return {uid: (view, bool(col)) for uid, view, col in zip(uids, views, colour)}


def a4c_agreement(scored: Iterable[tuple[str, bool, bool]], truth: dict[str, tuple[str, bool]]) -> dict:
    """Precision and recall of "kept in a4c_clips" against "grey-scale A4C in truth", over the clips given.

    ``scored``: (sop_instance_uid, kept, flagged colour) per clip; clips absent from the truth are ignored.
    Also counts colour-Doppler clips that were kept (must be 0) and colour flags that disagree with the truth.
    """
    tp = fp = fn = colour_kept = colour_flag_errors = clips = 0
    for uid, kept, flagged in scored:
        if uid not in truth:
            continue
        view, is_colour = truth[uid]
        wanted = view == "A4C" and not is_colour
        clips += 1
        tp += kept and wanted
        fp += kept and not wanted
        fn += wanted and not kept
        colour_kept += kept and is_colour
        colour_flag_errors += bool(flagged) != is_colour
    return {
        "clips": clips, "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
        "colour_clips_kept": colour_kept, "colour_flag_errors": colour_flag_errors,
    }


def a4c_truth_agreement(dicom_root: str | Path, kept: pa.Table, predictions: pa.Table, instances: pa.Table,
                        trained_on: set) -> dict[str, dict] | None:
    """Agreement of a shard's `a4c_clips` with a synthetic cohort's truth, over all scored clips and over the
    clips of patients the classifier did not train on; None for an archive without truth (every real one)."""
    truth_file = find_truth(dicom_root)
    if truth_file is None:
        return None
    kept_ids, truth = set(kept.column("sop_instance_uid").to_pylist()), load_truth(truth_file)
    patient = dict(zip(instances.column("sop_instance_uid").to_pylist(), instances.column("patient_key").to_pylist()))
    scored = [(uid, uid in kept_ids, bool(colour)) for uid, colour in
              zip(predictions.column("sop_instance_uid").to_pylist(), predictions.column("is_colour").to_pylist())]
    return {"all_clips": a4c_agreement(scored, truth),
            "held_out_patients": a4c_agreement([s for s in scored if patient.get(s[0]) not in trained_on], truth)}
