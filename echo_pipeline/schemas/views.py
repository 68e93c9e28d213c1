"""Stage 2 tables (echo_pipeline/views; docs/views.md): classifier training clips, predictions, A4C clips."""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import CODE_VERSION, RUN_ID

VIEW_CLASSES = ("a4c", "a2c", "plax", "psax", "subcostal", "other")  # p_<class> columns, network output order

VIEW_TRAINING_CLIPS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
        pa.field("label", pa.string(), nullable=False),  # the view in view_labels
        pa.field("split", pa.string(), nullable=False),  # train | validation (by patient)
        pa.field("predicted_view", pa.string()),  # validation clips only
        pa.field("predicted_probability", pa.float64()),  # of predicted_view; validation clips only
        pa.field("classifier_id", pa.string(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

VIEW_PREDICTIONS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("view", pa.string()),  # argmax class; null when the clip could not be decoded
    ]
    + [pa.field(f"p_{name}", pa.float64()) for name in VIEW_CLASSES]  # mean over sampled frames of the softmax
    + [
        pa.field("is_colour", pa.bool_()),  # colour-Doppler paint found (echo_pipeline.views.colour)
        pa.field("colour_fraction", pa.float64()),  # share of the image covered by that paint
        pa.field("frames_sampled", pa.int32()),  # distinct frames decoded for the prediction
        pa.field("classifier_id", pa.string(), nullable=False),
        pa.field("error", pa.string()),  # why the clip could not be decoded; null otherwise
        RUN_ID,
        CODE_VERSION,
    ]
)

A4C_CLIPS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string()),
        pa.field("series_instance_uid", pa.string()),
        pa.field("patient_key", pa.string()),
        pa.field("study_date", pa.date32()),
        pa.field("frames", pa.int32()),
        pa.field("frame_rate", pa.float64()),
        pa.field("p_a4c", pa.float64(), nullable=False),
        pa.field("classifier_id", pa.string(), nullable=False),
        pa.field("min_probability", pa.float64(), nullable=False),  # the thresholds this row passed
        pa.field("min_frames", pa.int32(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)
