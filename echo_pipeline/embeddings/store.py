"""Where embeddings live: vectors in .npy chunk files, located by an id table, keyed by model id.

Layout (DATA_ROOT is a `storage.DataRoot`; `<table>` is `clip_embeddings` or `report_embeddings`):

    arrays/<table>/<model key>/<partition>/<chunk>.vectors.npy    (N, D) float32: clip or report embeddings
    arrays/<table>/<model key>/<partition>/<chunk>.frames.npy     (N, 20, D) frame embeddings (clips only),
                                                                  float16 by default, zero past n_frames
    arrays/<table>/<model key>/<partition>/<chunk>.n_frames.npy   (N,) int32 (clips only)
    tables/<table>/part-<partition>.parquet                       id table: id, model_id, array_file, row, …

The id table is the truth: a vector exists when a row points at it. Each update writes its new chunk files
first and then replaces the partition's table atomically, so a killed run leaves either the old table (and an
orphan chunk) or the new one. A partition holds one model's rows: writing with another model id drops the old
model's rows and files, which is how a model change rebuilds everything.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Sequence, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from echo_pipeline.embeddings.compute import ClipEmbeddings, ReportEmbeddings
from echo_pipeline.errors import EmbeddingError
from echo_pipeline.storage import DataRoot, atomic_path
from echo_pipeline.schemas import TABLES

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Id column and count column of each embedding table.
ID_COLUMN = {"clip_embeddings": "sop_instance_uid", "report_embeddings": "report_id"}
COUNT_COLUMN = {"clip_embeddings": "n_frames", "report_embeddings": "n_texts"}


def model_key(model_id: str) -> str:
    """A file-name-safe, collision-free directory name for ``model_id`` (readable prefix + hash)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id).strip("-.")[:48] or "model"
    return f"{slug}-{hashlib.sha256(model_id.encode()).hexdigest()[:12]}"


def pending_items(existing_ids: Collection[str], items: Sequence[T], id_of: Callable[[T], str]) -> list[T]:
    """The items whose id is not in ``existing_ids``, in order, each id once."""
    seen = set(existing_ids)
    todo = []
    for item in items:
        key = id_of(item)
        if key not in seen:
            seen.add(key)
            todo.append(item)
    return todo


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


@dataclass
class UpdateSummary:
    """What one `embed_new` call did to a partition."""

    embedded: int = 0
    skipped: int = 0  # already stored for this model id
    removed: int = 0  # rows dropped: ids no longer among the items, or another model's rows
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, reason), not stored, retried next time


class EmbeddingStore:
    """The embeddings of one table (`clip_embeddings` / `report_embeddings`) made by one model."""

    def __init__(self, data_root: DataRoot, table: str, model_id: str, *, frame_dtype: np.dtype = np.float16):
        if table not in ID_COLUMN:
            raise EmbeddingError(f"unknown embedding table {table!r}; expected one of {sorted(ID_COLUMN)}")
        self.data_root, self.table, self.model_id = data_root, table, model_id
        self.frame_dtype = np.dtype(frame_dtype)
        self.id_column, self.count_column = ID_COLUMN[table], COUNT_COLUMN[table]

    @property
    def array_root(self) -> Path:
        return self.data_root.array_dir(self.table)

    def _rows(self, partition: str | None = None) -> pa.Table:
        table = self.data_root.read_table(self.table, partition)
        return table if table is not None else TABLES[self.table].empty_table()

    def rows(self, partition: str | None = None) -> pa.Table:
        """This model's id-table rows of one partition, or of all partitions when ``partition`` is None."""
        table = self._rows(partition)
        return table.filter(pc.equal(table["model_id"], self.model_id))

    def existing_ids(self, partition: str) -> set[str]:
        """Ids of ``partition`` already embedded by this model."""
        return set(self.rows(partition)[self.id_column].to_pylist())

    def _write_chunk(self, partition: str, batch: ClipEmbeddings | ReportEmbeddings) -> str:
        stem = f"{model_key(self.model_id)}/{partition}/chunk-{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        base = self.array_root / stem
        if isinstance(batch, ClipEmbeddings):
            _save_npy(base.with_name(base.name + ".frames.npy"), batch.frames.astype(self.frame_dtype))
            _save_npy(base.with_name(base.name + ".n_frames.npy"), batch.n_frames.astype(np.int32))
            _save_npy(base.with_name(base.name + ".vectors.npy"), batch.clips.astype(np.float32))
        else:
            _save_npy(base.with_name(base.name + ".vectors.npy"), batch.embeddings.astype(np.float32))
        return stem

    def append(self, partition: str, batch: ClipEmbeddings | ReportEmbeddings | None, *, run_id: str,
               code_version: str, keep_ids: Collection[str] | None = None) -> int:
        """Store ``batch`` in ``partition`` and return how many old rows were dropped.

        The partition's table becomes: this model's rows (only those in ``keep_ids`` when given) plus the
        batch. Another model's rows are dropped with their files; chunk files no row points at are deleted.
        """
        old = self._rows(partition)
        kept = old.filter(pc.equal(old["model_id"], self.model_id))
        if keep_ids is not None:
            kept = kept.filter(pc.is_in(kept[self.id_column], pa.array(list(keep_ids), pa.string())))
        new_rows = TABLES[self.table].empty_table()
        if batch is not None and len(batch.ids):
            stem = self._write_chunk(partition, batch)
            vectors = batch.clips if isinstance(batch, ClipEmbeddings) else batch.embeddings
            counts = batch.n_frames if isinstance(batch, ClipEmbeddings) else batch.n_texts
            new_rows = pa.table({
                self.id_column: batch.ids, "model_id": [self.model_id] * len(batch.ids),
                "array_file": [stem] * len(batch.ids), "row": np.arange(len(batch.ids), dtype=np.int64),
                self.count_column: np.asarray(counts, np.int32),
                "embedding_dim": np.full(len(batch.ids), vectors.shape[1], np.int32),
                "run_id": [run_id] * len(batch.ids), "code_version": [code_version] * len(batch.ids),
            }, schema=TABLES[self.table])
        self.data_root.write_table(self.table, pa.concat_tables([kept.cast(TABLES[self.table]), new_rows]), partition)
        self._delete_unreferenced(partition)
        return old.num_rows - kept.num_rows

    def _delete_unreferenced(self, partition: str) -> None:
        live = set(self._rows(partition)["array_file"].to_pylist())
        mine = model_key(self.model_id)
        for model_dir in self.array_root.iterdir():
            part_dir = model_dir / partition
            if not part_dir.is_dir():
                continue
            if model_dir.name != mine:
                shutil.rmtree(part_dir)  # another model's vectors: superseded by this model's
                continue
            for path in part_dir.glob("chunk-*.npy"):
                if f"{mine}/{partition}/{path.name.split('.', 1)[0]}" not in live:
                    path.unlink()

    def gather(self, rows: pa.Table | pd.DataFrame, suffix: str, dtype: np.dtype | None = None) -> np.ndarray:
        """Rows of the ``<chunk>.<suffix>.npy`` arrays that id-table ``rows`` point at, in ``rows`` order
        (``dtype`` None keeps the stored one)."""
        files = np.asarray(rows["array_file"], dtype=object)
        index = np.asarray(rows["row"])
        out = None
        for stem in np.unique(files):
            path = self.array_root / f"{stem}.{suffix}.npy"
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise EmbeddingError(f"{path}: embedding array unreadable ({e}); re-run the {self.table} asset "
                                     "for this partition (delete its table partition to force a rebuild)") from e
            where = np.flatnonzero(files == stem)
            if index[where].max() >= len(array):
                raise EmbeddingError(f"{path}: holds {len(array)} rows but the id table points at row "
                                     f"{index[where].max()}; re-run the {self.table} asset for this partition")
            if out is None:
                out = np.empty((len(rows),) + array.shape[1:], dtype=dtype or array.dtype)
            out[where] = array[index[where]]
        return out

    def _check_other_models(self, partitions: Sequence[str] | None) -> None:
        everything = pa.concat_tables([self._rows(p) for p in partitions]) if partitions else self._rows()
        others = everything.num_rows - pc.sum(pc.equal(everything["model_id"], self.model_id)).as_py() \
            if everything.num_rows else 0
        if others:
            log.warning("%s: %d rows belong to other models and are left out; embed those partitions with "
                        "model %s to include them", self.table, others, self.model_id)

    def _select(self, partitions: Sequence[str] | None) -> pa.Table:
        self._check_other_models(partitions)
        if partitions is None:
            return self.rows()
        return pa.concat_tables([self.rows(p) for p in partitions])

    def load_vectors(self, partitions: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """(ids, float32 (N, D) clip or report embeddings) of this model, over the given or all partitions."""
        rows = self._select(partitions)
        if rows.num_rows == 0:
            return [], np.zeros((0, 0), np.float32)
        return rows[self.id_column].to_pylist(), self.gather(rows, "vectors", np.float32)

    def load_frames(self, partitions: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(clip ids, float32 (N, 20, D) frame embeddings, (N,) frame counts) of this model's clips."""
        if self.table != "clip_embeddings":
            raise EmbeddingError(f"{self.table} has no frame embeddings; only clip_embeddings does")
        rows = self._select(partitions)
        if rows.num_rows == 0:
            return [], np.zeros((0, 0, 0), np.float32), np.zeros(0, np.int32)
        frames = self.gather(rows, "frames", np.float32)
        return rows[self.id_column].to_pylist(), frames, rows["n_frames"].to_numpy().astype(np.int32)


def embed_new(store: EmbeddingStore, partition: str, items: Sequence[T],
              embed_chunk: Callable[[Sequence[T]], ClipEmbeddings | ReportEmbeddings], *,
              id_of: Callable[[T], str], run_id: str, code_version: str, chunk_size: int = 512, prune: bool = True,
              progress: Callable[[int, int], None] | None = None) -> UpdateSummary:
    """Embed the items of ``partition`` that this model has not embedded yet; store them chunk by chunk.

    Each chunk is committed on its own, so a killed run resumes where it stopped. With ``prune``, rows whose
    id is no longer among ``items`` are dropped. ``progress(done, total)`` is called after each chunk.
    """
    todo = pending_items(store.existing_ids(partition), items, id_of)
    keep = {id_of(item) for item in items} if prune else None
    summary = UpdateSummary(skipped=len(items) - len(todo))
    if not todo:
        summary.removed = store.append(partition, None, run_id=run_id, code_version=code_version, keep_ids=keep)
        return summary
    for start in range(0, len(todo), chunk_size):
        batch = embed_chunk(todo[start:start + chunk_size])
        summary.removed += store.append(partition, batch, run_id=run_id, code_version=code_version, keep_ids=keep)
        summary.embedded += len(batch.ids)
        summary.failed.extend(batch.failed)
        if progress is not None:
            progress(min(start + chunk_size, len(todo)), len(todo))
    return summary
