"""Every table's columns and types, in one place.

Stage outputs are Parquet files written with these schemas; the DuckDB catalog exposes them under the same
names. `docs/tables.md` documents the same columns for users: change both together.
"""

from __future__ import annotations

import pyarrow as pa

# Lineage columns carried by every derived row.
RUN_ID = pa.field("run_id", pa.string(), nullable=False)
CODE_VERSION = pa.field("code_version", pa.string(), nullable=False)

DICOM_INSTANCES = pa.schema(
    [
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64(), nullable=False),
        pa.field("file_mtime_ns", pa.int64()),  # with file_size: how incremental ingestion spots changed files
        pa.field("shard", pa.string(), nullable=False),
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("series_instance_uid", pa.string()),
        pa.field("study_instance_uid", pa.string()),
        pa.field("patient_key", pa.string()),  # keyed hash of PatientID, never the raw id
        pa.field("accession_key", pa.string()),  # keyed hash of AccessionNumber
        pa.field("study_date", pa.date32()),
        pa.field("modality", pa.string()),
        pa.field("sop_class_uid", pa.string()),
        pa.field("manufacturer", pa.string()),
        pa.field("manufacturer_model", pa.string()),
        pa.field("transfer_syntax_uid", pa.string()),
        pa.field("photometric_interpretation", pa.string()),
        pa.field("rows", pa.int32()),
        pa.field("columns", pa.int32()),
        pa.field("frames", pa.int32()),
        pa.field("samples_per_pixel", pa.int32()),
        pa.field("bits_allocated", pa.int32()),
        pa.field("frame_rate", pa.float64()),
        pa.field("frame_rate_source", pa.string()),  # FrameTime | CineRate | RecommendedDisplayFrameRate | None
        pa.field("region_x0", pa.int32()),  # SequenceOfUltrasoundRegions bounds of the 2D region, when present
        pa.field("region_y0", pa.int32()),
        pa.field("region_x1", pa.int32()),
        pa.field("region_y1", pa.int32()),
        pa.field("burned_in_annotation", pa.string()),
        RUN_ID,
        CODE_VERSION,
    ]
)

INGEST_QUARANTINE = pa.schema(
    [
        pa.field("file_sha256", pa.string()),  # null only when the file could not be read at all
        pa.field("relative_path", pa.string(), nullable=False),
        pa.field("file_size", pa.int64()),
        pa.field("file_mtime_ns", pa.int64()),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # one of echo_pipeline.ingest.reasons.REASONS
        pa.field("exception_type", pa.string()),
        pa.field("message", pa.string(), nullable=False),
        pa.field("sop_instance_uid", pa.string()),
        pa.field("duplicate_of", pa.string()),  # relative path of the kept copy, for reason = duplicate
        RUN_ID,
        CODE_VERSION,
    ]
)

# --- reports (echo_pipeline/reports; docs/reports.md) ---------------------------------------------------------
REPORTS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),  # from the file, else derived from text + source_row
        pa.field("source_file", pa.string(), nullable=False),  # file name of the reports input
        pa.field("source_row", pa.int64(), nullable=False),  # 0-based data row in that file
        pa.field("accession_key", pa.string()),  # keyed hash of the accession number, never the raw value
        pa.field("study_instance_uid", pa.string()),
        pa.field("patient_key", pa.string()),  # keyed hash of the patient id
        pa.field("study_date", pa.date32()),
        pa.field("report_text", pa.string(), nullable=False),  # kept as written: the model trains on it
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_QUARANTINE = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("report_id", pa.string()),  # as given in the file, when it was
        pa.field("reason", pa.string(), nullable=False),  # one of echo_pipeline.reports.reading.QUARANTINE_REASONS
        pa.field("message", pa.string(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_LINKS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string()),  # null when not linked
        pa.field("patient_key", pa.string()),  # the linked study's patient, else the report's
        pa.field("link_method", pa.string()),  # accession | study_instance_uid | patient_date | patient_date_window
        pa.field("reason", pa.string()),  # null when linked, else orphan | ambiguous
        pa.field("candidate_count", pa.int32(), nullable=False),  # studies that fitted the deciding rule
        pa.field("date_offset_days", pa.int32()),  # study date minus report date, when linked and both known
        pa.field("detail", pa.string()),  # human-readable account of the decision
        RUN_ID,
        CODE_VERSION,
    ]
)

STUDIES_WITHOUT_REPORT = pa.schema(
    [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
        pa.field("study_date", pa.date32()),
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_LABEL_NAMES = ("lvef", "pasp", "pacemaker", "tavr", "mitraclip", "lv_dilation", "la_dilation",
                      "rv_dilation", "ra_dilation", "lvh", "effusion", "tamponade", "impella", "atrial_fibrillation",
                      "right_atrial_pressure", "normal_lv_wall_thickness", "no_significant_valvular_disease")
_LABEL_TYPES = {"lvef": pa.float64(), "pasp": pa.float64(), "pacemaker": pa.bool_(), "tavr": pa.bool_(),
                "mitraclip": pa.bool_(), "tamponade": pa.bool_(), "impella": pa.bool_(),
                "atrial_fibrillation": pa.bool_(), "normal_lv_wall_thickness": pa.bool_(),
                "no_significant_valvular_disease": pa.bool_()}  # the rest are words (severity; RA pressure level)
REPORT_LABELS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
    ]
    + [pa.field(name, _LABEL_TYPES.get(name, pa.string())) for name in REPORT_LABEL_NAMES]  # null = not stated
    + [pa.field(f"{name}_source", pa.string()) for name in REPORT_LABEL_NAMES]  # sentence the value came from
    + [pa.field("label_rules_sha256", pa.string()),  # the effective label rules that made the row
       RUN_ID, CODE_VERSION]
)

# Sentences that name a label's target but yield no value, by shape (numbers and ids masked): what a site's
# label rules do not cover yet (docs/reports.md, "Gap report").
REPORT_LABEL_GAPS = pa.schema(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("sentence_shape", pa.string(), nullable=False),  # lower case, every token with a digit -> "#"
        pa.field("sentence_count", pa.int64(), nullable=False),  # sentences of this shape, all reports
        pa.field("report_count", pa.int64(), nullable=False),  # reports holding at least one of them
        pa.field("example_report_id", pa.string(), nullable=False),
        pa.field("label_rules_sha256", pa.string(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

SPLITS = pa.schema(
    [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
        pa.field("split", pa.string(), nullable=False),  # train | validation | test
        RUN_ID,
        CODE_VERSION,
    ]
)

# --- embeddings (echo_pipeline/embeddings; docs/search.md) -----------------------------------------------------
# Id tables only: the vectors live in .npy files under arrays/<table>/ (see echo_pipeline.embeddings.store).
CLIP_EMBEDDINGS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),  # the clip's id
        pa.field("model_id", pa.string(), nullable=False),  # the model that made the vectors
        pa.field("array_file", pa.string(), nullable=False),  # chunk stem under arrays/clip_embeddings/
        pa.field("row", pa.int64(), nullable=False),  # row of this clip in the chunk's arrays
        pa.field("n_frames", pa.int32(), nullable=False),  # frames embedded (0, 2, …; at most 20)
        pa.field("embedding_dim", pa.int32(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

REPORT_EMBEDDINGS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("array_file", pa.string(), nullable=False),  # chunk stem under arrays/report_embeddings/
        pa.field("row", pa.int64(), nullable=False),
        pa.field("n_texts", pa.int32(), nullable=False),  # snippets averaged into the embedding
        pa.field("embedding_dim", pa.int32(), nullable=False),
        RUN_ID,
        CODE_VERSION,
    ]
)

# --- tokenizers (echo_pipeline/tokenizers; docs/tokenizers.md) ------------------------------------------------
BPE_TOKENS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("n_bpe_tokens", pa.int32(), nullable=False),  # CLIP BPE tokens of the whole report, no SOT/EOT
        pa.field("n_snippets", pa.int32(), nullable=False),  # sentence-aligned evaluation windows (bpe_snippets)
        pa.field("fits_context", pa.bool_(), nullable=False),  # n_bpe_tokens + 2 <= context length (77)
        RUN_ID,
        CODE_VERSION,
    ]
)

TEMPLATE_TOKENS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("vocabulary_id", pa.string(), nullable=False),  # TemplateVocabulary.vocabulary_id of the file used
        pa.field("n_tokens", pa.int32(), nullable=False),  # len(token_ids)
        pa.field("n_sentences", pa.int32(), nullable=False),
        pa.field("n_unknown_sentences", pa.int32(), nullable=False),  # encoded as UNK_SENTENCE
        pa.field("fits_context", pa.bool_(), nullable=False),  # n_tokens + 2 <= context length (77)
        pa.field("token_ids", pa.list_(pa.int32()), nullable=False),  # whole report, no SOT/EOT/padding
        RUN_ID,
        CODE_VERSION,
    ]
)

TOKENIZER_STATS = pa.schema(
    [
        pa.field("tokenizer", pa.string(), nullable=False),  # bpe | template
        pa.field("split", pa.string(), nullable=False),  # train | validation | test | unassigned | all
        pa.field("vocab_size", pa.int32(), nullable=False),
        pa.field("n_reports", pa.int64(), nullable=False),
        pa.field("mean_tokens", pa.float64(), nullable=False),  # per report, no SOT/EOT
        pa.field("sd_tokens", pa.float64()),  # null for a single report
        pa.field("fit_share", pa.float64(), nullable=False),  # share of reports whose tokens + 2 <= 77
        pa.field("sentence_coverage", pa.float64()),  # covered / all sentences; null for bpe
        pa.field("unknown_sentence_rate", pa.float64()),  # share of reports with an UNK_SENTENCE; null for bpe
        pa.field("compression_vs_bpe", pa.float64()),  # mean BPE tokens / mean tokens, same reports
        RUN_ID,
        CODE_VERSION,
    ]
)

# --- masking (echo_pipeline/masking; docs/masking.md) -----------------------------------------------------------
SECTOR_MASKS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),  # the DICOM file the mask was found in
        pa.field("shard", pa.string(), nullable=False),
        pa.field("method", pa.string(), nullable=False),  # regions | regions_pixels | pixels
        pa.field("mask_path", pa.string(), nullable=False),  # PNG (0 / 255, source size), relative to the data root
        pa.field("rows", pa.int32(), nullable=False),  # source frame size (the mask's size)
        pa.field("columns", pa.int32(), nullable=False),
        pa.field("area_fraction", pa.float64(), nullable=False),  # mask pixels / image pixels
        pa.field("bbox_x0", pa.int32(), nullable=False),  # inclusive bounds of the mask, source pixels
        pa.field("bbox_y0", pa.int32(), nullable=False),
        pa.field("bbox_x1", pa.int32(), nullable=False),
        pa.field("bbox_y1", pa.int32(), nullable=False),
        pa.field("apex_x", pa.float64(), nullable=False),  # the fitted fan (echo_pipeline.masking.geometry.Fan)
        pa.field("apex_y", pa.float64(), nullable=False),
        pa.field("radius", pa.float64(), nullable=False),
        pa.field("angle_left_deg", pa.float64(), nullable=False),
        pa.field("angle_right_deg", pa.float64(), nullable=False),
        pa.field("fit_iou", pa.float64(), nullable=False),  # IoU(mask, convex blob of the moving pixels inside it)
        pa.field("outside_fraction", pa.float64(), nullable=False),  # share of moving pixels outside the mask
        pa.field("angular_coverage", pa.float64(), nullable=False),  # least moving share over 12 slices of the fan
        pa.field("has_regions", pa.bool_(), nullable=False),  # the file has a 2D SequenceOfUltrasoundRegions box
        pa.field("regions_pixels_iou", pa.float64()),  # IoU(regions mask, pixels mask) when both exist
        pa.field("frames_sampled", pa.int32(), nullable=False),
        pa.field("analysis_scale", pa.int32(), nullable=False),  # frames analysed at 1/scale (large frames)
        RUN_ID,
        CODE_VERSION,
    ]
)

MASK_QUARANTINE = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # one of echo_pipeline.masking.plausibility.REASONS
        pa.field("message", pa.string(), nullable=False),
        pa.field("method", pa.string()),  # the method whose sector was judged, when one was found
        pa.field("area_fraction", pa.float64()),
        RUN_ID,
        CODE_VERSION,
    ]
)

MASKED_CLIPS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("file_sha256", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
        pa.field("clip_path", pa.string(), nullable=False),  # .npy uint8 (T, H, W, 3) RGB, relative to the data root
        pa.field("clip_format", pa.string(), nullable=False),  # npy (echo_pipeline.masking.clip_store)
        pa.field("frames", pa.int32(), nullable=False),  # every frame of the source clip
        pa.field("frame_rate", pa.float64()),  # frames per second, from dicom_instances
        pa.field("height", pa.int32(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("mask_method", pa.string(), nullable=False),  # sector_masks.method
        pa.field("decode_scale", pa.int32(), nullable=False),  # 1, 2, 4 or 8: JPEG frames decoded reduced
        pa.field("crop_x0", pa.int32(), nullable=False),  # the bounding square, source pixels (may leave the image)
        pa.field("crop_y0", pa.int32(), nullable=False),
        pa.field("crop_side", pa.int32(), nullable=False),
        pa.field("kept_fraction", pa.float64(), nullable=False),  # output pixels inside the mask
        RUN_ID,
        CODE_VERSION,
    ]
)

# --- view filtering (echo_pipeline/views; docs/views.md) -------------------------------------------------------
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

# --- evaluation (echo_pipeline/evaluation; docs/evaluation.md) ---------------------------------------------------
# Long tables: one row per metric, with its 95 % bootstrap CI. Partitioned by model variant (bpe | template).
_EVAL_LINEAGE = [
    pa.field("model_id", pa.string(), nullable=False),  # trained: the record's model id; untrained: weights hash
    pa.field("checkpoint_sha256", pa.string(), nullable=False),  # the evaluated trained checkpoint (references too)
    pa.field("model_kind", pa.string(), nullable=False),  # trained | untrained | training_mean
    pa.field("variant", pa.string(), nullable=False),  # bpe | template
    pa.field("dataset", pa.string(), nullable=False),  # internal | echonet_dynamic
    pa.field("split", pa.string(), nullable=False),  # test
]
_EVAL_METRIC = [
    pa.field("metric", pa.string(), nullable=False),
    pa.field("value", pa.float64()),  # NaN when undefined (e.g. an AUC with one class)
    pa.field("ci_low", pa.float64()),  # 95 % percentile bootstrap; null for descriptive rows
    pa.field("ci_high", pa.float64()),
]
_EVAL_BOOTSTRAP = [pa.field("seed", pa.int64(), nullable=False), pa.field("n_resamples", pa.int64(), nullable=False)]
_EVAL_PROMPTS = [
    pa.field("task", pa.string(), nullable=False),  # task name in prompts.yaml
    pa.field("label", pa.string(), nullable=False),  # report_labels column the truth comes from
    pa.field("prompt_strategy", pa.string(), nullable=False),  # base_prompts | sampled_reports | base_prompts_fallback | training_mean
    pa.field("primary", pa.bool_(), nullable=False),  # the variant's headline strategy (used by eval_summary)
    pa.field("n_prompts", pa.int64(), nullable=False),  # texts embedded as prompts (0 for training_mean)
]
_EVAL_PROMPTS_FILE = [pa.field("prompts_version", pa.string(), nullable=False),
                      pa.field("prompts_sha256", pa.string(), nullable=False)]

EVAL_RETRIEVAL = pa.schema(
    _EVAL_LINEAGE
    + [pa.field("direction", pa.string(), nullable=False)]  # image_to_report | report_to_image | both
    + _EVAL_METRIC
    + [
        pa.field("chance", pa.float64(), nullable=False),  # expected value for a random ranking
        pa.field("n", pa.int64(), nullable=False),  # studies = queries = candidates
    ]
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

EVAL_CLASSIFICATION = pa.schema(
    _EVAL_LINEAGE
    + _EVAL_PROMPTS
    + [pa.field("score_definition", pa.string(), nullable=False)]
    + _EVAL_METRIC
    + [
        pa.field("n", pa.int64(), nullable=False),  # clips with a known label
        pa.field("n_studies", pa.int64(), nullable=False),
        pa.field("n_positive", pa.int64(), nullable=False),
    ]
    + _EVAL_PROMPTS_FILE
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

EVAL_REGRESSION = pa.schema(
    _EVAL_LINEAGE
    + _EVAL_PROMPTS
    + [pa.field("method", pa.string(), nullable=False)]  # how a prediction is made, in words
    + _EVAL_METRIC
    + [
        pa.field("n", pa.int64(), nullable=False),  # clips (internal) or videos (EchoNet) with a known value
        pa.field("n_studies", pa.int64(), nullable=False),
    ]
    + _EVAL_PROMPTS_FILE
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

EVAL_PATIENT_IDENTIFICATION = pa.schema(
    _EVAL_LINEAGE
    + _EVAL_METRIC
    + [
        pa.field("n", pa.int64(), nullable=False),  # pairs behind the row
        pa.field("n_clips", pa.int64(), nullable=False),
        pa.field("n_patients", pa.int64(), nullable=False),
    ]
    + _EVAL_BOOTSTRAP
    + [RUN_ID, CODE_VERSION]
)

_SUMMARY_METRICS = ("mcmrr", "lvef_mae", "pasp_mae", "tavr_auc", "mitraclip_auc", "pacemaker_auc")
EVAL_SUMMARY = pa.schema(
    _EVAL_LINEAGE
    + [
        pa.field("prompt_strategy", pa.string(), nullable=False),  # the variant's primary strategy
        pa.field("n", pa.int64(), nullable=False),  # studies in retrieval (internal) or videos (EchoNet)
    ]
    + [pa.field(f"{name}{suffix}", pa.float64()) for name in _SUMMARY_METRICS for suffix in ("", "_ci_low", "_ci_high")]
    + [RUN_ID, CODE_VERSION]
)

# --- synthetic cohort truth (echo_pipeline/synth; docs/synthetic-cohort.md) -----------------------------------
# Written by the generator under <cohort>/truth/; ground truth for tests and evaluation, not pipeline outputs.
SYNTH_PATIENTS = pa.schema(
    [
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("patient_name", pa.string(), nullable=False),
        pa.field("birth_date", pa.date32(), nullable=False),
        pa.field("sex", pa.string(), nullable=False),
    ]
)

SYNTH_STUDIES = pa.schema(
    [
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("accession_number", pa.string(), nullable=False),
        pa.field("patient_id", pa.string(), nullable=False),
        pa.field("study_date", pa.date32(), nullable=False),
        pa.field("has_report", pa.bool_(), nullable=False),
    ]
    + [pa.field(name, _LABEL_TYPES.get(name, pa.string()), nullable=False) for name in REPORT_LABEL_NAMES]
    + [
        pa.field("heart_rate", pa.float64(), nullable=False),  # bpm, drives the drawn cycle and the ECG
        pa.field("manufacturer", pa.string(), nullable=False),
    ]
)

SYNTH_CLIPS = pa.schema(
    [
        pa.field("sop_instance_uid", pa.string(), nullable=False),
        pa.field("series_instance_uid", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),  # under dicom/
        pa.field("view", pa.string(), nullable=False),  # anatomy drawn: A4C | A2C | PLAX | PSAX | SUBCOSTAL
        pa.field("is_colour", pa.bool_(), nullable=False),  # colour-Doppler box over that anatomy
        pa.field("storage_kind", pa.string(), nullable=False),  # jpeg | rgb | rle_rgb | mono | mono_rle
        pa.field("transfer_syntax_uid", pa.string(), nullable=False),
        pa.field("photometric_interpretation", pa.string(), nullable=False),
        pa.field("rows", pa.int32(), nullable=False),
        pa.field("columns", pa.int32(), nullable=False),
        pa.field("frames", pa.int32(), nullable=False),
        pa.field("frame_rate", pa.float64(), nullable=False),
        pa.field("frame_rate_tag", pa.string(), nullable=False),  # which header tags carry the frame rate
        pa.field("has_regions", pa.bool_(), nullable=False),  # SequenceOfUltrasoundRegions present
        pa.field("sector_apex_x", pa.float64(), nullable=False),  # pixel coordinates of the fan's apex
        pa.field("sector_apex_y", pa.float64(), nullable=False),
        pa.field("sector_radius", pa.float64(), nullable=False),  # pixels
        pa.field("sector_half_angle_deg", pa.float64(), nullable=False),
        pa.field("sector_mask_path", pa.string(), nullable=False),  # relative to the cohort folder
        pa.field("heart_rate", pa.float64(), nullable=False),
        pa.field("manufacturer", pa.string(), nullable=False),
    ]
)

SYNTH_REPORTS = pa.schema(
    [
        pa.field("report_id", pa.string(), nullable=False),
        pa.field("study_instance_uid", pa.string()),  # the true study; null for orphan reports
        pa.field("is_orphan", pa.bool_(), nullable=False),
        pa.field("link_defect", pa.string(), nullable=False),  # none | no_accession | patient_date_only | date_off | orphan
    ]
    + [pa.field(name, _LABEL_TYPES.get(name, pa.string())) for name in REPORT_LABEL_NAMES]  # null = not stated
)

SYNTH_FILES = pa.schema(
    [
        pa.field("relative_path", pa.string(), nullable=False),  # under dicom/
        pa.field("expected", pa.string(), nullable=False),  # "ingested" or an ingest quarantine reason code
        pa.field("duplicate_of", pa.string()),  # the kept copy, for expected = duplicate
        pa.field("sop_instance_uid", pa.string()),  # null for files that are not DICOM
    ]
)

#: Truth tables of a synthetic cohort: file stem under truth/ → schema.
SYNTH_TRUTH_TABLES: dict[str, pa.Schema] = {
    "patients": SYNTH_PATIENTS,
    "studies": SYNTH_STUDIES,
    "clips": SYNTH_CLIPS,
    "reports": SYNTH_REPORTS,
    "files": SYNTH_FILES,
}

#: Name → schema for every table the catalog exposes; each stage adds its tables here.
TABLES: dict[str, pa.Schema] = {
    "dicom_instances": DICOM_INSTANCES,
    "ingest_quarantine": INGEST_QUARANTINE,
    "reports": REPORTS,
    "report_quarantine": REPORT_QUARANTINE,
    "report_links": REPORT_LINKS,
    "studies_without_report": STUDIES_WITHOUT_REPORT,
    "report_labels": REPORT_LABELS,
    "report_label_gaps": REPORT_LABEL_GAPS,
    "splits": SPLITS,
    "clip_embeddings": CLIP_EMBEDDINGS,
    "report_embeddings": REPORT_EMBEDDINGS,
    "bpe_tokens": BPE_TOKENS,
    "template_tokens": TEMPLATE_TOKENS,
    "tokenizer_stats": TOKENIZER_STATS,
    "sector_masks": SECTOR_MASKS,
    "mask_quarantine": MASK_QUARANTINE,
    "masked_clips": MASKED_CLIPS,
    "view_training_clips": VIEW_TRAINING_CLIPS,
    "view_predictions": VIEW_PREDICTIONS,
    "a4c_clips": A4C_CLIPS,
    "eval_retrieval": EVAL_RETRIEVAL,
    "eval_classification": EVAL_CLASSIFICATION,
    "eval_regression": EVAL_REGRESSION,
    "eval_patient_identification": EVAL_PATIENT_IDENTIFICATION,
    "eval_summary": EVAL_SUMMARY,
}
