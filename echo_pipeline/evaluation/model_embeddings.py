"""Embeddings of an evaluation cohort: the trained model's from the store, the reference model's on the fly.

The trained model's clips and reports were embedded by the `clip_embeddings` / `report_embeddings` assets
(docs/search.md); only the cohort's rows are read (memory-mapped chunk files, no full-archive load). The
random-init reference is embedded here with the same embedding code (frames 0, 2, …, 38, the same resizing
and normalisation), for the cohort only. Prompts and prompt reports go through the same text path as stored
reports (`embed_texts` / `embed_reports` with the tokenizer's evaluation texts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from echo_pipeline.devices import resolve_device
from echo_pipeline.errors import EvaluationError
from echo_pipeline.embeddings import (ClipEmbedder, ClipEmbeddings, ClipItem, EmbeddingStore, embed_reports,
                                      embed_texts)
from echo_pipeline.evaluation.prompt_sets import Encoder
from echo_pipeline.storage import DataRoot


def _store_rows(store: EmbeddingStore, partitions: Sequence[str] | None, ids: Sequence[str]) -> pd.DataFrame:
    """This model's id-table rows for ``ids`` (first row per id), indexed by id."""
    parts = list(partitions) if partitions else [None]
    frames = [store.rows(p).to_pandas() for p in parts]
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if rows.empty:
        return rows
    rows = rows.drop_duplicates(store.id_column).set_index(store.id_column)
    return rows[rows.index.isin(set(ids))]


def stored_clip_embeddings(data_root: DataRoot, model_id: str, partitions: Sequence[str] | None,
                           clip_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(found mask over ``clip_ids``, frames (n_found, 20, D), n_frames, clip vectors) stored for ``model_id``.

    Frames keep their stored dtype (float16 by default); rows follow ``clip_ids`` order.
    """
    store = EmbeddingStore(data_root, "clip_embeddings", model_id)
    rows = _store_rows(store, partitions, clip_ids)
    found = np.asarray(pd.Index(clip_ids).isin(rows.index), dtype=bool)
    if not found.any():
        return found, np.zeros((0, 0, 0), np.float32), np.zeros(0, np.int32), np.zeros((0, 0), np.float32)
    rows = rows.loc[np.asarray(clip_ids, dtype=object)[found]]
    return (found, store.gather(rows, "frames"), rows["n_frames"].to_numpy(np.int32),
            store.gather(rows, "vectors").astype(np.float32))


def stored_report_embeddings(data_root: DataRoot, model_id: str, partitions: Sequence[str] | None,
                             report_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(found mask over ``report_ids``, (n_found, D) report vectors) stored for ``model_id``."""
    store = EmbeddingStore(data_root, "report_embeddings", model_id)
    rows = _store_rows(store, partitions, report_ids)
    found = np.asarray(pd.Index(report_ids).isin(rows.index), dtype=bool)
    if not found.any():
        return found, np.zeros((0, 0), np.float32)
    rows = rows.loc[np.asarray(report_ids, dtype=object)[found]]
    return found, store.gather(rows, "vectors").astype(np.float32)


class ModelEncoder:
    """A model and its tokenizer on a device: clips, reports and prompts → L2-normalised embeddings."""

    def __init__(self, model: torch.nn.Module, tokenizer, *, device: str = "cpu", batch_frames: int = 64,
                 num_workers: int = 1, preprocessing: str = "model"):
        self.model, self.tokenizer, self.device = model, tokenizer, resolve_device(device)
        self.embedder = ClipEmbedder(model, device=self.device, batch_frames=batch_frames, num_workers=num_workers,
                                     preprocessing=preprocessing)
        self.batch_texts = 4 * batch_frames

    def clips(self, data_root: DataRoot, clips: pd.DataFrame, *, chunk: int = 2048,
              progress: Callable[[int, int], None] | None = None) -> ClipEmbeddings:
        """`ClipEmbeddings` of ``clips`` (sop_instance_uid, clip_path relative to the data root), embedded
        ``chunk`` clips at a time with ``progress(done, total)`` after each. Frames are kept as float16, the
        precision of stored frame embeddings, so both models are scored from equally rounded frames."""
        items = [ClipItem(uid, Path(data_root.path) / rel)
                 for uid, rel in zip(clips["sop_instance_uid"], clips["clip_path"])]
        parts = []
        for start in range(0, len(items), chunk):
            part = self.embedder.embed_clips(items[start:start + chunk])
            part.frames = part.frames.astype(np.float16)
            parts.append(part)
            if progress is not None:
                progress(min(start + chunk, len(items)), len(items))
        good = [p for p in parts if len(p.ids)]
        if not good:
            return ClipEmbeddings([], np.zeros((0, 0, 0), np.float16), np.zeros(0, np.int32),
                                  np.zeros((0, 0), np.float32), [f for p in parts for f in p.failed])
        return ClipEmbeddings([i for p in good for i in p.ids], np.concatenate([p.frames for p in good]),
                              np.concatenate([p.n_frames for p in good]), np.concatenate([p.clips for p in good]),
                              [f for p in parts for f in p.failed])

    def video_frames(self, frames: np.ndarray) -> np.ndarray:
        """(F, D) frame embeddings of an in-memory uint8 (T, H, W, 3) RGB video."""
        return self.embedder.embed_frames(frames)[0]

    def prompts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) embeddings of prompt sentences, one text each."""
        return embed_texts(self.model, self.tokenizer, list(texts), device=self.device, batch_size=self.batch_texts)

    def reports(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) embeddings of whole report texts, made like the stored report embeddings."""
        result = embed_reports(self.model, self.tokenizer, list(enumerate(texts)), self.tokenizer.evaluation_texts,
                               device=self.device, batch_size=self.batch_texts)
        if result.failed:
            raise EvaluationError(f"{len(result.failed)} prompt reports have no text to embed "
                                  f"(first: row {result.failed[0][0]}); check the reports table")
        return result.embeddings

    def encoders(self) -> tuple[Encoder, Encoder]:
        return self.prompts, self.reports
