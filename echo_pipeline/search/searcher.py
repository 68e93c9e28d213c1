"""The searcher behind `echo-pipeline search`: the reports nearest a clip, and the clips nearest a text, from a
data root's indexes (the command line itself is `echo_pipeline_cli.py`).

A clip is given by its SOP Instance UID (its stored embedding is used) or as a DICOM file, which is masked and
preprocessed on the fly through the pipeline's own path (`echo_pipeline.masking.dicom_file`) and then embedded
like the stored clips. Results carry the ids to join back to
the tables: reports with their linked study and the start of their text, clips with their study and file.

From Python::

    searcher = Searcher("data/out", variant="bpe")
    searcher.reports_for_clip("1.2.826...")          # [ReportHit(rank, score, report_id, ...), ...]
    searcher.reports_for_dicom("some/file.dcm")
    searcher.clips_for_text("severe mitral regurgitation")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch

from echo_pipeline import catalog, masking
from echo_pipeline.devices import resolve_device
from echo_pipeline.embeddings import EmbeddingStore
from echo_pipeline.errors import InputContractError, SearchIndexError
from echo_pipeline.masking.dicom_file import masked_frames_from_dicom
from echo_pipeline.model_variants import (CLIP_TABLE, REPORT_INDEX, VIDEO_INDEX, check_variant, index_dir,
                                          read_record)
from echo_pipeline.search.index import read_manifest
from echo_pipeline.search.query import (embed_query_clip, embed_query_text, search_clips_for_text,
                                        search_reports_for_clip)
from echo_pipeline.storage import DataRoot
from echo_pipeline.training import registry

SNIPPET_CHARS = 100


@dataclass(frozen=True)
class ReportHit:
    rank: int
    score: float
    report_id: str
    study_instance_uid: str | None
    snippet: str


@dataclass(frozen=True)
class ClipHit:
    rank: int
    score: float
    sop_instance_uid: str
    study_instance_uid: str | None
    relative_path: str | None




class Searcher:
    """Searches of one model variant's indexes under a data root; the model is loaded on first use."""

    def __init__(self, data_root: str | Path, variant: str = "bpe", *, device: str = "auto") -> None:
        self.store = DataRoot(Path(data_root))
        if not self.store.path.is_dir():
            raise InputContractError(f"data root {self.store.path}: does not exist; pass --data-root of a pipeline run")
        try:
            check_variant(variant)
        except ValueError as error:
            raise InputContractError(f"--variant: {error}") from error
        self.variant, self.device = variant, resolve_device(device)
        self.record = read_record(self.store, variant)
        self.video_dir = index_dir(self.store, VIDEO_INDEX, variant)
        self.report_dir = index_dir(self.store, REPORT_INDEX, variant)

    @functools.cached_property
    def model(self) -> torch.nn.Module:
        return registry.load_model(self.record)

    def _require(self, directory: Path, asset: str) -> None:
        """A clear message when the index is missing or was built with another model than the record's."""
        if not (directory / "manifest.json").is_file():
            raise SearchIndexError(f"{directory}: no index yet; materialise {asset}[{self.variant}] first")
        built_with = read_manifest(directory).get("model_id")
        if built_with != self.record.model_id:
            raise SearchIndexError(f"{directory}: built with model {built_with!r}, the current {self.variant!r} model "
                                   f"is {self.record.model_id!r}; materialise {asset}[{self.variant}] again")

    def clip_embedding(self, sop_instance_uid: str) -> np.ndarray:
        """The stored (D,) embedding of a clip by the current model (SearchIndexError when it has none)."""
        store = EmbeddingStore(self.store, CLIP_TABLE, self.record.model_id)
        rows = store.rows()
        match = rows.filter(pc.equal(rows["sop_instance_uid"], sop_instance_uid))
        if match.num_rows == 0:
            raise SearchIndexError(f"clip {sop_instance_uid!r} has no {self.variant!r} embedding; check the SOP "
                                   "Instance UID (SELECT sop_instance_uid FROM clip_embeddings) or materialise "
                                   f"clip_embeddings[{self.variant}]")
        stem, row = match["array_file"][0].as_py(), match["row"][0].as_py()
        return np.asarray(np.load(store.array_root / f"{stem}.vectors.npy", mmap_mode="r")[row], np.float32)

    def reports_for_embedding(self, clip_embedding: np.ndarray, k: int = 10) -> list[ReportHit]:
        self._require(self.report_dir, REPORT_INDEX)
        found = search_reports_for_clip(self.report_dir, clip_embedding, k, model_id=self.record.model_id)
        details = self._lookup("""
            SELECT r.report_id, l.study_instance_uid, r.report_text FROM reports AS r
            LEFT JOIN report_links AS l USING (report_id) WHERE r.report_id IN (SELECT unnest(?))""",
                               [i for i, _ in found], {"reports", "report_links"})
        hits = []
        for rank, (report_id, score) in enumerate(found, start=1):
            study, text = details.get(report_id, (None, ""))
            snippet = " ".join((text or "").split())
            snippet = snippet if len(snippet) <= SNIPPET_CHARS else snippet[:SNIPPET_CHARS - 1] + "…"
            hits.append(ReportHit(rank, score, report_id, study, snippet))
        return hits

    def reports_for_clip(self, sop_instance_uid: str, k: int = 10) -> list[ReportHit]:
        """Top-k reports for a clip the pipeline embedded (by SOP Instance UID), from its stored embedding."""
        return self.reports_for_embedding(self.clip_embedding(sop_instance_uid), k)

    def reports_for_dicom(self, dicom_path: str | Path, k: int = 10) -> list[ReportHit]:
        """Top-k reports for a DICOM clip, masked and embedded now (not added to any table)."""
        self._require(self.report_dir, REPORT_INDEX)
        frames = masked_frames_from_dicom(Path(dicom_path), self._masked_size())
        return self.reports_for_embedding(embed_query_clip(self.model, frames, device=self.device,
                                                            preprocessing=self.record.preprocessing), k)

    def clips_for_text(self, text: str, k: int = 10) -> list[ClipHit]:
        """Top-k clips for a free text, embedded as a report would be (the tokenizer's evaluation texts)."""
        if not text.strip():
            raise InputContractError("the --text query is empty; pass words to search for")
        self._require(self.video_dir, VIDEO_INDEX)
        tokenizer = registry.load_tokenizer(self.record)
        query = embed_query_text(self.model, tokenizer, tokenizer.evaluation_texts(text), device=self.device)
        found = search_clips_for_text(self.video_dir, query, k, model_id=self.record.model_id)
        details = self._lookup("""
            SELECT sop_instance_uid, study_instance_uid, relative_path FROM dicom_instances
            WHERE sop_instance_uid IN (SELECT unnest(?))""", [i for i, _ in found], {"dicom_instances"})
        return [ClipHit(rank, score, uid, *details.get(uid, (None, None)))
                for rank, (uid, score) in enumerate(found, start=1)]

    def _lookup(self, sql: str, ids: list[str], needs: set[str]) -> dict[str, tuple]:
        """id → the other selected columns, for the ids found; empty when the tables are not there."""
        if not ids or not needs <= set(catalog.available_views(self.store)):
            return {}
        rows = catalog.open_reader(self.store).execute(sql, [ids]).fetchall()
        return {row[0]: tuple(row[1:]) for row in rows}

    def _masked_size(self) -> int:
        """The size the pipeline's masked clips have, so an on-the-fly clip is embedded like them."""
        if "masked_clips" in catalog.available_views(self.store):
            row = catalog.open_reader(self.store).execute("SELECT height FROM masked_clips LIMIT 1").fetchone()
            if row is not None:
                return int(row[0])
        return masking.OUTPUT_SIZE


def format_report_hits(hits: list[ReportHit]) -> str:
    lines = [f"{'rank':>4}  {'score':>7}  {'report_id':<20} {'study_instance_uid':<40} text"]
    lines += [f"{h.rank:>4}  {h.score:>7.4f}  {h.report_id:<20} {h.study_instance_uid or '-':<40} {h.snippet}"
              for h in hits]
    return "\n".join(lines)


def format_clip_hits(hits: list[ClipHit]) -> str:
    lines = [f"{'rank':>4}  {'score':>7}  {'sop_instance_uid':<44} {'study_instance_uid':<40} relative_path"]
    lines += [f"{h.rank:>4}  {h.score:>7.4f}  {h.sop_instance_uid:<44} {h.study_instance_uid or '-':<40} "
              f"{h.relative_path or '-'}" for h in hits]
    return "\n".join(lines)


def run_search(data_root: Path, *, variant: str = "bpe", k: int = 10, clip: str | None = None,
               dicom: Path | None = None, text: str | None = None, device: str = "auto") -> str:
    """What `echo-pipeline search` prints for exactly one of ``clip``, ``dicom`` or ``text``.

    Raises an EchoPipelineError subclass with a one-line message saying what to do for a missing model or
    index, an unknown clip, or an unreadable DICOM file.
    """
    if sum(x is not None for x in (clip, dicom, text)) != 1:
        raise InputContractError("give exactly one of --clip SOP_UID, --dicom PATH or --text TEXT")
    if k < 1:
        raise InputContractError(f"-k {k}: ask for at least one result")
    searcher = Searcher(data_root, variant, device=device)
    header = f"variant {variant}, model {searcher.record.model_id}"
    if text is not None:
        return f"clips for {text!r} ({header})\n" + format_clip_hits(searcher.clips_for_text(text, k))
    if clip is not None:
        return f"reports for clip {clip} ({header})\n" + format_report_hits(searcher.reports_for_clip(clip, k))
    return f"reports for {dicom} ({header})\n" + format_report_hits(searcher.reports_for_dicom(dicom, k))


__all__ = ["ClipHit", "ReportHit", "Searcher", "format_clip_hits", "format_report_hits", "run_search"]
