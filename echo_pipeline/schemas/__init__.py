"""Every table's columns and types: one module per stage, and here the one `TABLES` dict of them all.

Stage outputs are Parquet files written with these schemas; the DuckDB catalog exposes them under the same
names. `docs/tables.md` documents the same columns for users: change both together. Modules: `lineage`
(run_id, code_version), `ingest`, `views`, `masking`, `reports`, `tokenizers`, `embeddings`, `studies`, `evaluation`,
`synth` (the synthetic cohort's truth tables). Import schemas from here (`from echo_pipeline.schemas import X`).
"""

from __future__ import annotations

import pyarrow as pa

from echo_pipeline.schemas.lineage import (  # noqa: F401
    RUN_ID,
    CODE_VERSION,
)
from echo_pipeline.schemas.ingest import (  # noqa: F401
    DICOM_INSTANCES,
    INGEST_QUARANTINE,
    SCAN_SKIPPED,
)
from echo_pipeline.schemas.reports import (  # noqa: F401
    REPORTS,
    REPORT_QUARANTINE,
    REPORT_LINKS,
    STUDIES_WITHOUT_REPORT,
    REPORT_LABEL_NAMES,
    REPORT_LABELS,
    REPORT_LABEL_GAPS,
    SPLITS,
)
from echo_pipeline.schemas.tokenizers import (  # noqa: F401
    BPE_TOKENS,
    TEMPLATE_TOKENS,
    TEMPLATE_UNKNOWN_SENTENCES,
    TOKENIZER_STATS,
)
from echo_pipeline.schemas.masking import (  # noqa: F401
    SECTOR_MASKS,
    MASK_QUARANTINE,
    MASKED_CLIPS,
)
from echo_pipeline.schemas.views import (  # noqa: F401
    VIEW_CLASSES,
    VIEW_TRAINING_CLIPS,
    VIEW_PREDICTIONS,
    A4C_CLIPS,
)
from echo_pipeline.schemas.embeddings import (  # noqa: F401
    CLIP_EMBEDDINGS,
    REPORT_EMBEDDINGS,
)
from echo_pipeline.schemas.studies import (  # noqa: F401
    STUDY_EMBEDDINGS,
    PROCEDURE_EVENTS,
    EVENT_QUARANTINE,
    EVAL_CLINICAL_CHANGE,
    EVAL_SUBGROUPS,
)
from echo_pipeline.schemas.evaluation import (  # noqa: F401
    EVAL_RETRIEVAL,
    EVAL_CLASSIFICATION,
    EVAL_REGRESSION,
    EVAL_PATIENT_IDENTIFICATION,
    EVAL_SUMMARY,
)
from echo_pipeline.schemas.interpretation import (  # noqa: F401
    EMBEDDING_UMAP,
    PROMPT_SALIENCY,
    STUDY_REPORTS,
)
from echo_pipeline.schemas.synth import (  # noqa: F401
    SYNTH_PATIENTS,
    SYNTH_STUDIES,
    SYNTH_CLIPS,
    SYNTH_REPORTS,
    SYNTH_FILES,
    SYNTH_TRUTH_TABLES,
)

#: Name → schema for every table the catalog exposes; each stage adds its tables here.
TABLES: dict[str, pa.Schema] = {
    "dicom_instances": DICOM_INSTANCES,
    "ingest_quarantine": INGEST_QUARANTINE,
    "scan_skipped": SCAN_SKIPPED,
    "reports": REPORTS,
    "report_quarantine": REPORT_QUARANTINE,
    "report_links": REPORT_LINKS,
    "studies_without_report": STUDIES_WITHOUT_REPORT,
    "report_labels": REPORT_LABELS,
    "report_label_gaps": REPORT_LABEL_GAPS,
    "splits": SPLITS,
    "clip_embeddings": CLIP_EMBEDDINGS,
    "report_embeddings": REPORT_EMBEDDINGS,
    "study_embeddings": STUDY_EMBEDDINGS,
    "procedure_events": PROCEDURE_EVENTS,
    "event_quarantine": EVENT_QUARANTINE,
    "bpe_tokens": BPE_TOKENS,
    "template_tokens": TEMPLATE_TOKENS,
    "template_unknown_sentences": TEMPLATE_UNKNOWN_SENTENCES,
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
    "embedding_umap": EMBEDDING_UMAP,
    "prompt_saliency": PROMPT_SALIENCY,
    "study_reports": STUDY_REPORTS,
    "eval_clinical_change": EVAL_CLINICAL_CHANGE,
    "eval_subgroups": EVAL_SUBGROUPS,
}
