"""FAISS indexes: exact neighbours, IVF recall in the manifest, integrity checks, atomic writes, searches."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from echo_pipeline.errors import CheckpointError, IndexIntegrityError, SearchIndexError
from echo_pipeline.search import (
    IndexConfig, add_to_index, build_index, embed_query_clip, embed_query_text, load_index, read_manifest,
    search_clips_for_text, search_reports_for_clip,
)
from echo_pipeline.search import index as index_module


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def random_unit(n: int, d: int, seed: int) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((n, d)))


def brute_force_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return np.argsort(-(vectors @ unit(query)), kind="stable")[:k].tolist()


def test_exact_search_returns_true_neighbours(tmp_path):
    vectors = random_unit(300, 16, seed=0)
    ids = [f"clip-{i}" for i in range(300)]
    manifest = build_index(tmp_path / "idx", vectors, ids, content="clips", model_id="m")
    assert (manifest["kind"], manifest["n_vectors"], manifest["dim"], manifest["recall_at_10"]) == ("flat", 300, 16, None)

    rng = np.random.default_rng(1)
    for target in (0, 17, 299):
        query = vectors[target] + 0.05 * rng.standard_normal(16).astype(np.float32)
        hits = search_clips_for_text(tmp_path / "idx", query, k=5)
        assert [h[0] for h in hits] == [ids[i] for i in brute_force_top(vectors, query, 5)]
        assert hits[0][0] == ids[target]
        np.testing.assert_allclose(hits[0][1], float(unit(query) @ vectors[target]), atol=1e-5)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_k_larger_than_index_and_unnormalised_input(tmp_path):
    vectors = random_unit(4, 8, seed=2)
    build_index(tmp_path / "idx", 3.0 * vectors, list("abcd"), content="reports", model_id="m")
    hits = search_reports_for_clip(tmp_path / "idx", vectors[2], k=10)
    assert len(hits) == 4 and hits[0][0] == "c"
    np.testing.assert_allclose(hits[0][1], 1.0, atol=1e-5)  # stored vectors were re-normalised


def test_ivf_records_recall_at_10_in_manifest(tmp_path):
    vectors = random_unit(3000, 16, seed=3)
    ids = [str(i) for i in range(3000)]
    everything = build_index(tmp_path / "all", vectors, ids, content="clips", model_id="m",
                             config=IndexConfig(kind="ivf", nlist=32, nprobe=32, recall_queries=200))
    assert everything["build_params"]["nlist"] == 32 and everything["recall_queries"] == 200
    assert everything["recall_at_10"] == pytest.approx(1.0)  # probing every list is exhaustive

    one = build_index(tmp_path / "one", vectors, ids, content="clips", model_id="m",
                      config=IndexConfig(kind="ivf", nlist=32, nprobe=1, recall_queries=200))
    assert 0.0 < one["recall_at_10"] < 0.95  # random data, one list of 32: neighbours are often elsewhere
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["recall_at_10"] == one["recall_at_10"]

    # The recorded figure is what the loaded index actually achieves on the same queries.
    loaded = load_index(tmp_path / "one")
    queries = vectors[:200]
    recall = index_module.recall_at_k(loaded.index, vectors, queries, 10)
    given = build_index(tmp_path / "given", vectors, ids, content="clips", model_id="m",
                        config=IndexConfig(kind="ivf", nlist=32, nprobe=1), recall_queries=queries)
    assert given["recall_query_source"] == "given" and given["recall_at_10"] == pytest.approx(recall)
    assert load_index(tmp_path / "one", nprobe=32).search(vectors[5:6], 1)[0][0][0] == "5"


def test_flipped_byte_is_refused(tmp_path):
    vectors = random_unit(50, 8, seed=4)
    manifest = build_index(tmp_path / "idx", vectors, [str(i) for i in range(50)], content="clips", model_id="m")
    path = tmp_path / "idx" / manifest["index_file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the stored vectors
    path.write_bytes(bytes(data))

    faiss.read_index(str(path))  # FAISS itself loads the corrupted file without complaint
    with pytest.raises(IndexIntegrityError, match="does not match the manifest") as caught:
        load_index(tmp_path / "idx")
    assert isinstance(caught.value, CheckpointError) and manifest["index_file"] in str(caught.value)


def test_changed_ids_file_and_missing_manifest_are_refused(tmp_path):
    manifest = build_index(tmp_path / "idx", random_unit(5, 4, seed=5), list("abcde"), content="clips",
                           model_id="m")
    ids_path = tmp_path / "idx" / manifest["ids_file"]
    ids_path.write_text(json.dumps(list("abcdf")))
    with pytest.raises(IndexIntegrityError, match="ids-"):
        load_index(tmp_path / "idx")
    (tmp_path / "idx" / "manifest.json").unlink()
    with pytest.raises(IndexIntegrityError, match="manifest"):
        load_index(tmp_path / "idx")


def test_failed_write_leaves_previous_index_and_no_partial_file(tmp_path, monkeypatch):
    old_vectors = random_unit(20, 8, seed=6)
    build_index(tmp_path / "idx", old_vectors, [f"old{i}" for i in range(20)], content="clips", model_id="m")
    before = sorted(p.name for p in (tmp_path / "idx").iterdir())

    def half_then_fail(path, data):
        path.write_bytes(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(index_module, "_write_blob", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        build_index(tmp_path / "idx", random_unit(30, 8, seed=7), [f"new{i}" for i in range(30)],
                    content="clips", model_id="m")
    monkeypatch.undo()

    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == before  # no temp or half-written files
    loaded = load_index(tmp_path / "idx")
    assert loaded.index.ntotal == 20 and loaded.search(old_vectors[3], 1)[0][0][0] == "old3"


def test_rebuild_keeps_one_previous_generation(tmp_path):
    for seed in range(3):
        build_index(tmp_path / "idx", random_unit(10, 4, seed=seed), [f"{seed}-{i}" for i in range(10)],
                    content="clips", model_id="m")
    assert len(list((tmp_path / "idx").glob("index-*.faiss"))) == 2
    assert len(list((tmp_path / "idx").glob("ids-*.json"))) == 2


def test_flat_index_grows_incrementally(tmp_path):
    vectors = random_unit(40, 8, seed=8)
    ids = [f"v{i}" for i in range(40)]
    build_index(tmp_path / "idx", vectors[:30], ids[:30], content="clips", model_id="m")
    manifest = add_to_index(tmp_path / "idx", vectors[25:], ids[25:], model_id="m")  # 25..29 already there
    assert manifest["n_vectors"] == 40 and manifest["added_since_build"] == 10
    loaded = load_index(tmp_path / "idx")
    assert loaded.ids == ids
    assert loaded.search(vectors[35], 1)[0][0][0] == "v35"
    with pytest.raises(SearchIndexError, match="model"):
        add_to_index(tmp_path / "idx", vectors[:1], ["x"], model_id="other")

    build_index(tmp_path / "ivf", vectors, ids, content="clips", model_id="m", config=IndexConfig(kind="ivf", nlist=4))
    with pytest.raises(SearchIndexError, match="rebuilt"):
        add_to_index(tmp_path / "ivf", vectors[:1], ["x"], model_id="m")


def test_bad_inputs_are_refused(tmp_path):
    vectors = random_unit(6, 4, seed=9)
    with pytest.raises(SearchIndexError, match="not unique"):
        build_index(tmp_path / "a", vectors, list("aabcde"), content="clips", model_id="m")
    with pytest.raises(SearchIndexError, match="zero or non-finite"):
        build_index(tmp_path / "b", np.vstack([vectors[:5], np.zeros((1, 4))]), list("abcdef"), content="clips",
                    model_id="m")
    build_index(tmp_path / "c", vectors, list("abcdef"), content="clips", model_id="m")
    with pytest.raises(SearchIndexError, match="expected 'reports'"):
        search_reports_for_clip(tmp_path / "c", vectors[0])
    with pytest.raises(SearchIndexError, match="dimension"):
        search_clips_for_text(tmp_path / "c", np.ones(5))
    with pytest.raises(SearchIndexError, match="built with model"):
        search_clips_for_text(tmp_path / "c", vectors[0], model_id="other")
    assert read_manifest(tmp_path / "c")["content"] == "clips"


def test_query_helpers_embed_like_the_stored_path(tmp_path):
    from test_embeddings import tiny_clip, toy_tokenizer

    model = tiny_clip()
    frames = np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)
    clip = embed_query_clip(model, frames)
    text = embed_query_text(model, toy_tokenizer, "severe mitral regurgitation")
    assert clip.shape == text.shape == (24,)
    np.testing.assert_allclose([np.linalg.norm(clip), np.linalg.norm(text)], 1.0, atol=1e-5)
    others = random_unit(20, 24, seed=10)
    build_index(tmp_path / "v", np.vstack([others, clip]), [f"o{i}" for i in range(20)] + ["query-clip"],
                content="clips", model_id="m")
    assert search_clips_for_text(tmp_path / "v", clip, k=1)[0][0] == "query-clip"
