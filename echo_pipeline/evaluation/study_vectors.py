"""Clip and study vectors of a set of clips, for the trained model (stored: `clip_embeddings`,
`study_embeddings`) and the random-init reference (embedded here, its study vectors pooled by the same rule as
`study_embeddings`): what the analyses of studies over time compare."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from echo_pipeline import model_variants
from echo_pipeline.embeddings import model_fingerprint
from echo_pipeline.evaluation.model_embeddings import ModelEncoder, stored_clip_embeddings
from echo_pipeline.storage import DataRoot
from echo_pipeline.studies.embeddings import load_study_embeddings, mean_by_study
from echo_pipeline.training import registry


@dataclass
class KindVectors:
    """One model's unit vectors: clips (rows of ``clip_ids``) and studies (rows of ``study_uids``)."""

    clip_ids: list[str]
    clip_studies: list[str]
    clips: np.ndarray
    study_uids: list[str]
    studies: np.ndarray

    def clips_of_study(self) -> dict[str, np.ndarray]:
        rows: dict[str, list[int]] = {}
        for i, study in enumerate(self.clip_studies):
            rows.setdefault(study, []).append(i)
        return {study: self.clips[r] for study, r in rows.items()}


def _kind_vectors(ids, studies_of: dict[str, str], vectors: np.ndarray) -> KindVectors:
    studies = [studies_of[i] for i in ids]
    pooled = mean_by_study(vectors, studies)
    return KindVectors(list(ids), studies, vectors, pooled.study_uids, pooled.vectors)


def model_vectors(store: DataRoot, record: model_variants.ModelRecord, clips: pd.DataFrame, *, device: str = "auto",
                  batch_frames: int = 64, num_workers: int = 1,
                  progress: Callable[[str], None] = lambda _: None) -> tuple[dict[str, KindVectors], dict[str, str]]:
    """({"trained": …, "untrained": …}, model_id per kind) for ``clips`` (sop_instance_uid, clip_path,
    study_instance_uid). Clips without a stored trained embedding are left out of both kinds."""
    studies_of = dict(zip(clips["sop_instance_uid"], clips["study_instance_uid"]))
    partitions = model_variants.variant_partitions(store, model_variants.CLIP_TABLE, record.variant) or None
    found, _, _, vectors = stored_clip_embeddings(store, record.model_id, partitions,
                                                  clips["sop_instance_uid"].tolist())
    clips = clips[found].reset_index(drop=True)
    out = {"trained": _kind_vectors(clips["sop_instance_uid"].tolist(), studies_of, vectors)}
    # The trained model's study vectors are the stored `study_embeddings` (the same rule over every embedded
    # clip of the study), so the tables and the catalog agree.
    rows, stored = load_study_embeddings(store, record.variant, record.model_id)
    wanted = rows["study_instance_uid"].isin(set(clips["study_instance_uid"])).to_numpy()
    out["trained"].study_uids, out["trained"].studies = rows["study_instance_uid"][wanted].tolist(), stored[wanted]
    tokenizer = registry.load_tokenizer(record)
    untrained = ModelEncoder(registry.untrained_model(record, tokenizer), tokenizer, device=device,
                             batch_frames=batch_frames, num_workers=num_workers)
    progress(f"embedding {len(clips)} clips with the untrained model")
    embedded = untrained.clips(store, clips)
    out["untrained"] = _kind_vectors(embedded.ids, studies_of, embedded.clips)
    return out, {"trained": record.model_id,
                 "untrained": f"untrained:{record.preset}:{model_fingerprint(untrained.model)}"}
