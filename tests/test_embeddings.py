"""Clip and report embeddings: frame choice, normalisation, batching, and the incremental model-keyed store."""

from __future__ import annotations

import cv2
import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from echo_pipeline.embeddings import (
    ClipEmbedder, ClipItem, EmbeddingStore, embed_new, embed_reports, embed_texts, model_fingerprint,
    select_frame_indices,
)
from echo_pipeline.errors import EmbeddingError
from echo_pipeline.storage import DataRoot

IMAGE_SIZE = 32
VOCAB = 64


def tiny_clip(seed: int = 0) -> torch.nn.Module:
    """A randomly initialised open_clip CLIP small enough to run in milliseconds."""
    torch.manual_seed(seed)
    model = open_clip.CLIP(
        embed_dim=24,
        vision_cfg=dict(layers=1, width=32, head_width=16, patch_size=8, image_size=IMAGE_SIZE),
        text_cfg=dict(context_length=16, vocab_size=VOCAB, width=32, heads=2, layers=1),
    )
    return model.eval()


def toy_tokenizer(texts: list[str], context_length: int = 77) -> torch.Tensor:
    """Characters → ids in 1..VOCAB-2, then an end token VOCAB-1 (the largest id, as CLIP's argmax pooling needs)."""
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [1 + ord(c) % (VOCAB - 2) for c in text][: context_length - 1] + [VOCAB - 1]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def write_clip(path, n_frames: int, size: int = IMAGE_SIZE, seed: int = 0):
    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    np.save(path, frames)
    return frames


def reference_frame_embedding(model, frame: np.ndarray) -> np.ndarray:
    """The textbook preprocessing, written independently: /255, CLIP mean/std, NCHW, encode, normalise."""
    mean = np.array(open_clip.constants.OPENAI_DATASET_MEAN, np.float32)
    std = np.array(open_clip.constants.OPENAI_DATASET_STD, np.float32)
    x = torch.from_numpy(((frame.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        return F.normalize(model.encode_image(x), dim=-1)[0].numpy()


@pytest.fixture(scope="module")
def model():
    return tiny_clip()


def test_frame_indices_follow_the_paper_and_shorter_clips():
    assert select_frame_indices(100).tolist() == list(range(0, 40, 2))
    assert select_frame_indices(40).tolist() == list(range(0, 40, 2))
    assert select_frame_indices(7).tolist() == [0, 2, 4, 6]
    assert select_frame_indices(1).tolist() == [0]
    assert select_frame_indices(0).tolist() == []


def test_clip_embeddings_use_frames_0_2_to_38_and_normalised_mean(tmp_path, model):
    long = write_clip(tmp_path / "long.npy", 50, seed=1)
    short = write_clip(tmp_path / "short.npy", 7, seed=2)
    items = [ClipItem("long", tmp_path / "long.npy"), ClipItem("short", tmp_path / "short.npy")]
    result = ClipEmbedder(model, batch_frames=8, num_workers=1).embed_clips(items)

    assert result.ids == ["long", "short"] and result.n_frames.tolist() == [20, 4]
    assert result.frames.shape == (2, 20, 24)
    for row, frames in enumerate([long, short]):
        n = result.n_frames[row]
        expected = np.stack([reference_frame_embedding(model, frames[i]) for i in range(0, 2 * n, 2)])
        np.testing.assert_allclose(result.frames[row, :n], expected, atol=1e-5)
        assert np.all(result.frames[row, n:] == 0)
        mean = expected.mean(axis=0)
        np.testing.assert_allclose(result.clips[row], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.frames[0], axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.clips, axis=-1), 1.0, atol=1e-5)


def test_batch_size_and_loader_threads_do_not_change_results(tmp_path, model):
    items = []
    for i, n in enumerate([45, 3, 19, 1, 60]):
        write_clip(tmp_path / f"c{i}.npy", n, seed=10 + i)
        items.append(ClipItem(f"c{i}", tmp_path / f"c{i}.npy"))
    a = ClipEmbedder(model, batch_frames=7, num_workers=0).embed_clips(items)
    b = ClipEmbedder(model, batch_frames=64, num_workers=2).embed_clips(items)
    assert a.ids == b.ids and a.n_frames.tolist() == b.n_frames.tolist() == [20, 2, 10, 1, 20]
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-5)
    np.testing.assert_allclose(a.clips, b.clips, atol=1e-5)


def test_larger_clips_are_resized_with_inter_area(tmp_path, model):
    frames = write_clip(tmp_path / "big.npy", 3, size=3 * IMAGE_SIZE, seed=3)
    result = ClipEmbedder(model, num_workers=0).embed_clips([ClipItem("big", tmp_path / "big.npy")])
    small = cv2.resize(frames[2], (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(result.frames[0, 1], reference_frame_embedding(model, small), atol=1e-5)


def test_embed_frames_matches_stored_clip_path(tmp_path, model):
    frames = write_clip(tmp_path / "q.npy", 30, seed=4)
    embedder = ClipEmbedder(model, num_workers=0)
    stored = embedder.embed_clips([ClipItem("q", tmp_path / "q.npy")])
    per_frame, clip = embedder.embed_frames(frames)
    np.testing.assert_allclose(per_frame, stored.frames[0, :15], atol=1e-5)
    np.testing.assert_allclose(clip, stored.clips[0], atol=1e-5)


def test_unreadable_or_wrong_clips_are_reported_not_embedded(tmp_path, model):
    write_clip(tmp_path / "ok.npy", 5)
    (tmp_path / "broken.npy").write_bytes(b"not a numpy file")
    np.save(tmp_path / "gray.npy", np.zeros((4, IMAGE_SIZE, IMAGE_SIZE), np.uint8))
    items = [ClipItem(name, tmp_path / f"{name}.npy") for name in ("broken", "ok", "gray", "missing")]
    result = ClipEmbedder(model, num_workers=1).embed_clips(items)
    assert result.ids == ["ok"] and len(result.clips) == 1
    reasons = dict(result.failed)
    assert set(reasons) == {"broken", "gray", "missing"}
    assert "broken.npy" in reasons["broken"] and "(T, H, W, 3)" in reasons["gray"]


def test_report_embedding_is_normalised_mean_of_snippet_embeddings(model):
    reports = [("r1", "LV normal. RV mildly dilated. Small effusion."), ("r2", "Severe AS."), ("r3", "  ")]
    result = embed_reports(model, toy_tokenizer, reports, lambda text: [s for s in text.split(".") if s.strip()],
                           batch_size=2)
    assert result.ids == ["r1", "r2"] and result.n_texts.tolist() == [3, 1]
    assert result.failed == [("r3", "no text to embed")]
    snippets = embed_texts(model, toy_tokenizer, ["LV normal", " RV mildly dilated", " Small effusion"])
    mean = snippets.mean(axis=0)
    np.testing.assert_allclose(result.embeddings[0], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_allclose(result.embeddings[1], embed_texts(model, toy_tokenizer, ["Severe AS"])[0], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1.0, atol=1e-5)


def test_model_fingerprint_tracks_weights():
    assert model_fingerprint(tiny_clip(0)) == model_fingerprint(tiny_clip(0))
    assert model_fingerprint(tiny_clip(0)) != model_fingerprint(tiny_clip(1))


class CountingEmbedder:
    """Wraps ClipEmbedder.embed_clips and records which clip ids it was asked to embed."""

    def __init__(self, model):
        self.embedder = ClipEmbedder(model, num_workers=0)
        self.calls: list[list[str]] = []

    def __call__(self, items):
        self.calls.append([item.clip_id for item in items])
        return self.embedder.embed_clips(items)


def make_items(tmp_path, names, n_frames=6):
    items = []
    for i, name in enumerate(names):
        path = tmp_path / "clips" / f"{name}.npy"
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            write_clip(path, n_frames + i, seed=100 + i)
        items.append(ClipItem(name, path))
    return items


def test_incremental_embedding_skips_known_ids_and_prunes_removed(tmp_path, model):
    root = DataRoot(tmp_path / "data")
    store = EmbeddingStore(root, "clip_embeddings", "model-a")
    first = CountingEmbedder(model)
    summary = embed_new(store, "00", make_items(tmp_path, ["a", "b", "c"]), first, id_of=lambda it: it.clip_id,
                        run_id="run1", code_version="v", chunk_size=2)
    assert first.calls == [["a", "b"], ["c"]] and summary.embedded == 3 and summary.skipped == 0
    ids_before, vectors_before = store.load_vectors()
    assert ids_before == ["a", "b", "c"]

    second = CountingEmbedder(model)
    summary = embed_new(store, "00", make_items(tmp_path, ["a", "c", "d"]), second, id_of=lambda it: it.clip_id,
                        run_id="run2", code_version="v")
    assert second.calls == [["d"]]
    assert (summary.embedded, summary.skipped, summary.removed) == (1, 2, 1)
    ids, vectors = store.load_vectors()
    assert ids == ["a", "c", "d"]
    np.testing.assert_array_equal(vectors[:2], vectors_before[[0, 2]])  # known ids untouched
    table = store.rows("00").to_pydict()
    assert table["run_id"] == ["run1", "run1", "run2"] and table["n_frames"] == [3, 4, 4]
    # chunk files: the first chunk (a, b) is still referenced by a; nothing orphaned beyond referenced chunks
    chunk_stems = {p.name.split(".", 1)[0] for p in store.array_root.rglob("chunk-*.npy")}
    assert {s.rsplit("/", 1)[1] for s in table["array_file"]} == chunk_stems

    third = CountingEmbedder(model)
    embed_new(store, "00", make_items(tmp_path, ["a", "c", "d"]), third, id_of=lambda it: it.clip_id,
              run_id="run3", code_version="v")
    assert third.calls == []


def test_frames_round_trip_through_store_as_float16(tmp_path, model):
    store = EmbeddingStore(DataRoot(tmp_path / "data"), "clip_embeddings", "m")
    items = make_items(tmp_path, ["x", "y"], n_frames=30)
    direct = ClipEmbedder(model, num_workers=0).embed_clips(items)
    embed_new(store, "03", items, ClipEmbedder(model, num_workers=0).embed_clips, id_of=lambda it: it.clip_id,
              run_id="r", code_version="v")
    ids, frames, n_frames = store.load_frames()
    assert ids == ["x", "y"] and n_frames.tolist() == [15, 16] and frames.dtype == np.float32
    np.testing.assert_allclose(frames, direct.frames, atol=2e-3)  # float16 on disk
    _, clips = store.load_vectors(["03"])
    np.testing.assert_array_equal(clips, direct.clips)  # clip vectors stay float32


def test_model_id_change_rebuilds_everything(tmp_path, model):
    root = DataRoot(tmp_path / "data")
    items = make_items(tmp_path, ["a", "b"])
    old = EmbeddingStore(root, "clip_embeddings", "model-a")
    embed_new(old, "00", items, CountingEmbedder(model), id_of=lambda it: it.clip_id, run_id="r", code_version="v")
    old_dirs = {p.parent for p in old.array_root.rglob("chunk-*.npy")}

    other = tiny_clip(seed=5)
    new = EmbeddingStore(root, "clip_embeddings", "model-b")
    assert new.existing_ids("00") == set()
    counting = CountingEmbedder(other)
    summary = embed_new(new, "00", items, counting, id_of=lambda it: it.clip_id, run_id="r2", code_version="v")
    assert counting.calls == [["a", "b"]] and summary.removed == 2
    assert set(root.read_table("clip_embeddings")["model_id"].to_pylist()) == {"model-b"}
    assert old.load_vectors()[0] == [] and not any(d.exists() for d in old_dirs)
    _, vectors = new.load_vectors()
    np.testing.assert_allclose(vectors, ClipEmbedder(other, num_workers=0).embed_clips(items).clips, atol=1e-6)


def test_report_store_and_missing_array_is_a_clear_error(tmp_path, model):
    root = DataRoot(tmp_path / "data")
    store = EmbeddingStore(root, "report_embeddings", "m")
    reports = [("r1", "Normal LV."), ("r2", "Dilated RA.")]
    embed_new(store, "all", reports, lambda chunk: embed_reports(model, toy_tokenizer, chunk, lambda t: [t]),
              id_of=lambda r: r[0], run_id="r", code_version="v")
    ids, vectors = store.load_vectors()
    assert ids == ["r1", "r2"] and vectors.shape == (2, 24)
    assert store.rows()["n_texts"].to_pylist() == [1, 1]
    for path in store.array_root.rglob("*.vectors.npy"):
        path.unlink()
    with pytest.raises(EmbeddingError, match="vectors.npy"):
        store.load_vectors()
