"""A process killed (SIGKILL) while it embeds clips or builds an index leaves no half-written table or index.

The child process materializes the embedding and index assets in Dagster as production does, and kills itself
at the worst moment: half-way through writing an embedding chunk, the embeddings id table, the FAISS index
file or the index manifest (a real SIGKILL, so no `finally` and no cleanup runs). Afterwards every Parquet
table reads, every stored row finds its vectors, the index (when there is one) verifies against its manifest
and is the previous, complete one; a re-run then finishes the work and equals an uninterrupted run.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from echo_pipeline.embeddings import EmbeddingStore
from echo_pipeline.search import verify_index
from echo_pipeline.model_variants import CLIP_TABLE, VIDEO_INDEX, index_dir, read_record
from echo_pipeline.storage import DataRoot
from test_embedding_assets import save_tiny_model, write_masked_clips, write_reports

REPO = Path(__file__).resolve().parents[1]
CLIPS = {"00": [f"1.{i}" for i in range(6)], "01": [f"2.{i}" for i in range(5)]}

#: The child: patch the one write named by argv[2] so that, on its argv[3]-th call, it writes half of its
#: bytes into the temporary file and then SIGKILLs its own process; then materialize as production does.
CHILD = r"""
import os, signal, sys
import dagster as dg
import numpy as np
from pathlib import Path

import echo_pipeline.embeddings.store as store_module
import echo_pipeline.search.index as index_module
import echo_pipeline.storage as storage_module
from assets.embeddings import (clip_embeddings, report_embeddings, report_index, report_index_matches_manifest,
                               video_index, video_index_matches_manifest)
from resources import PipelineResource

data_root, point, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = {"n": 0}

def die_half_way(path, data: bytes):
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        os.fsync(handle.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

def due() -> bool:
    calls["n"] += 1
    return calls["n"] == nth

if point == "chunk":  # an embedding chunk's .npy
    real_save = store_module._save_npy
    def save(path, array):
        if "clip_embeddings" in str(path) and due():
            import io
            buffer = io.BytesIO(); np.save(buffer, array)
            with storage_module.atomic_path(path) as tmp:
                die_half_way(tmp, buffer.getvalue())
        real_save(path, array)
    store_module._save_npy = save
elif point == "table":  # the clip_embeddings id table's Parquet file
    real_write = storage_module.pq.write_table
    def write_table(table, where, **kwargs):
        real_write(table, where, **kwargs)
        if "clip_embeddings" in str(Path(where).parent) and due():
            die_half_way(where, Path(where).read_bytes())
    storage_module.pq.write_table = write_table
elif point in ("index", "manifest"):  # the FAISS index file, or the manifest naming it
    real_blob = index_module._write_blob
    def write_blob(path, data):
        wanted = ".index-" if point == "index" else ".manifest"
        if Path(path).name.startswith(wanted) and due():
            die_half_way(path, data)
        real_blob(path, data)
    index_module._write_blob = write_blob

resource = PipelineResource(dicom_root=data_root, reports_path=data_root, data_root=data_root)
result = dg.materialize([clip_embeddings, report_embeddings, video_index, report_index, video_index_matches_manifest,
                         report_index_matches_manifest], partition_key="bpe", resources={"pipeline": resource},
                        run_config={"ops": {"clip_embeddings": {"config": {"chunk_size": 3}}}}, raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def run_child(data_root: Path, point: str = "none", nth: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
           "DAGSTER_DISABLE_TELEMETRY": "1"}
    env.pop("DAGSTER_HOME", None)
    return subprocess.run([sys.executable, "-c", CHILD, str(data_root), point, str(nth)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def build_root(path: Path, clips: dict[str, list[str]]) -> DataRoot:
    store = DataRoot(path)
    save_tiny_model(store, seed=0, name="kill")
    write_masked_clips(store, clips)
    write_reports(store, linked=3, orphans=0)
    return store


def assert_sound(store: DataRoot) -> dict:
    """Every table reads, every stored row's vectors load, the video index verifies; returns what is stored:
    the embedded clip ids and the video index's vector count."""
    for table in store.path.glob("tables/*/part-*.parquet"):
        pq.read_table(table)  # raises on a half-written file
    model_id = read_record(store, "bpe").model_id
    ids, vectors = EmbeddingStore(store, CLIP_TABLE, model_id).load_vectors()  # raises on a missing/short chunk
    assert len(ids) == vectors.shape[0] and len(set(ids)) == len(ids)
    directory = index_dir(store, VIDEO_INDEX, "bpe")
    return {"clips": sorted(ids), "index_vectors": verify_index(directory)["n_vectors"]}


@pytest.mark.parametrize("point, nth", [("chunk", 4), ("table", 2), ("index", 1), ("manifest", 1)])
def test_a_kill_leaves_no_half_written_table_or_index_and_a_rerun_completes(tmp_path, point, nth):
    every_clip = sorted(uid for uids in CLIPS.values() for uid in uids)
    store = build_root(tmp_path / "data", {"00": CLIPS["00"][:2]})
    first = run_child(store.path)  # an uninterrupted run over two clips: the previous, complete state
    assert first.returncode == 0, first.stderr[-3000:]
    assert assert_sound(store)["index_vectors"] == 2
    write_masked_clips(store, CLIPS)  # nine more clips arrive

    killed = run_child(store.path, point, nth)
    assert killed.returncode == -signal.SIGKILL, f"the kill did not happen mid-way:\n{killed.stderr[-3000:]}"
    assert list(store.path.rglob(".*.tmp")), "the kill left no half-written temporary file: it came too late"
    after_kill = assert_sound(store)
    assert after_kill["index_vectors"] == 2  # the previous index, whole
    assert set(after_kill["clips"]) >= set(CLIPS["00"][:2])  # nothing committed before the kill is lost
    if point in ("chunk", "table"):
        assert set(after_kill["clips"]) < set(every_clip)  # the kill interrupted the embedding

    rerun = run_child(store.path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert assert_sound(store) == {"clips": every_clip, "index_vectors": len(every_clip)}
