"""Search the video and report indexes: report → clip, clip → report, and query embedding helpers.

`video_index` rows are clips ("clips"), `report_index` rows are reports ("reports"). Each search checks the
index holds what the caller expects, so a swapped directory is an error rather than a list of wrong ids, and,
when ``model_id`` is given, that the query came from the model the index was built with.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from echo_pipeline.embeddings.compute import ClipEmbedder, embed_texts
from echo_pipeline.errors import SearchIndexError
from echo_pipeline.pooling import pool_texts
from echo_pipeline.search.index import MANIFEST_FILE, LoadedIndex, load_index

CLIPS = "clips"
REPORTS = "reports"


@functools.lru_cache(maxsize=4)
def _cached(index_dir: str, manifest_digest: str, nprobe: int | None) -> LoadedIndex:
    return load_index(Path(index_dir), nprobe=nprobe)


def open_index(index_dir: Path, *, nprobe: int | None = None) -> LoadedIndex:
    """The verified index of ``index_dir``, loaded once per manifest version (a rebuild is picked up)."""
    path = Path(index_dir).resolve()
    try:
        digest = hashlib.sha256((path / MANIFEST_FILE).read_bytes()).hexdigest()
    except OSError:
        digest = ""  # load_index raises the clear error
    return _cached(str(path), digest, nprobe)


def search(index_dir: Path, queries: np.ndarray, k: int = 10, *, content: str | None = None,
           model_id: str | None = None, nprobe: int | None = None) -> list[list[tuple[str, float]]]:
    """Top-``k`` (id, cosine) per query row of ``queries`` (Q, D) or (D,), best first."""
    loaded = open_index(index_dir, nprobe=nprobe)
    manifest = loaded.manifest
    if content is not None and manifest.get("content") != content:
        raise SearchIndexError(f"{index_dir}: index holds {manifest.get('content')!r}, expected {content!r}; "
                               "pass the report index to search reports and the video index to search clips")
    if model_id is not None and manifest.get("model_id") != model_id:
        raise SearchIndexError(f"{index_dir}: built with model {manifest.get('model_id')!r}, the query with "
                               f"{model_id!r}; embed the query with the index's model or rebuild the index")
    return loaded.search(queries, k)


def search_reports_for_clip(index_dir: Path, clip_embedding: np.ndarray, k: int = 10, *,
                            model_id: str | None = None, nprobe: int | None = None) -> list[tuple[str, float]]:
    """Reports of the report index most similar to one clip embedding: [(report_id, cosine)], best first."""
    return search(index_dir, np.asarray(clip_embedding).reshape(1, -1), k, content=REPORTS, model_id=model_id,
                  nprobe=nprobe)[0]


def search_clips_for_text(index_dir: Path, text_embedding: np.ndarray, k: int = 10, *,
                          model_id: str | None = None, nprobe: int | None = None) -> list[tuple[str, float]]:
    """Clips of the video index most similar to one text embedding: [(sop_instance_uid, cosine)], best first."""
    return search(index_dir, np.asarray(text_embedding).reshape(1, -1), k, content=CLIPS, model_id=model_id,
                  nprobe=nprobe)[0]


def embed_query_text(model: torch.nn.Module, tokenizer: Callable, text: str | list[str], *,
                     device: str | torch.device = "cpu") -> np.ndarray:
    """Unit-norm (D,) embedding of a query text; a list of texts is averaged (like report snippets)."""
    texts = [text] if isinstance(text, str) else list(text)
    return pool_texts(embed_texts(model, tokenizer, texts, device=device), [len(texts)])[0]


def embed_query_clip(model: torch.nn.Module, frames: np.ndarray, *, device: str | torch.device = "cpu",
                     image_size: int | None = None, preprocessing: str = "model") -> np.ndarray:
    """Unit-norm (D,) clip embedding of uint8 (T, H, W, 3) masked frames, exactly as stored clips are embedded."""
    return ClipEmbedder(model, device=device, image_size=image_size, num_workers=0,
                        preprocessing=preprocessing).embed_frames(frames)[1]
