"""`echo-pipeline search` on a real tiny setup: a synthetic cohort's DICOM clips masked through the pipeline's
own path, a tiny random echo-tiny model recorded as the "bpe" variant, real embeddings and FAISS indexes.

Results are checked against brute-force cosine similarity over the stored vectors, and a DICOM query against
the stored embedding of the same clip.
"""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import echo_pipeline_cli
from echo_pipeline.embeddings import ClipEmbedder, EmbeddingStore, embed_new, embed_reports, embed_texts
from echo_pipeline.search import IndexConfig
from echo_pipeline.masking.dicom_file import masked_frames_from_dicom
from echo_pipeline.model_variants import CLIP_TABLE, REPORT_INDEX, REPORT_TABLE, VIDEO_INDEX, index_dir, report_partition
from echo_pipeline.search.refresh import refresh_index, update_clip_embeddings
from echo_pipeline.search.searcher import Searcher
from echo_pipeline.source_paths import pseudonymise_path
from echo_pipeline.storage import DataRoot
from echo_pipeline.synth.cohort import generate_cohort
from echo_pipeline.tokenizers import make_tokenizer
from echo_pipeline import model_variants
from echo_pipeline.training import registry
from echo_pipeline.training.model_factory import build_model, save_hub_layout

QUERY = "Severe mitral regurgitation. The left ventricle is dilated."
PATH_KEY = b"search-test-key"


def lineage(n: int) -> dict:
    return {"run_id": ["test"] * n, "code_version": ["test"] * n}


def record_tiny_model(store: DataRoot) -> model_variants.ModelRecord:
    torch.manual_seed(0)
    model, cfg = build_model("echo-tiny", text_cfg=make_tokenizer("bpe").text_cfg)
    directory = save_hub_layout(model, cfg, store.path / "models" / "tiny")
    record = model_variants.ModelRecord(
        variant="bpe", model_id="test-tiny", preset="echo-tiny", tokenizer="bpe", checkpoint_dir=str(directory),
        checkpoint_sha256="sha-tiny", vocabulary_path=None, best_epoch=0, best_val_mcmrr=0.0, epochs_completed=0,
        train_pairs=0, run_id="test", code_version="test")
    model_variants.write_record(store, record)
    return record


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(data root, cohort dir, indexed clips as a DataFrame, linked reports as a DataFrame)."""
    cohort = tmp_path_factory.mktemp("search_cohort") / "cohort"
    generate_cohort(cohort, patients=2, seed=3, workers=1, progress=False)
    store = DataRoot(tmp_path_factory.mktemp("search_data"))
    truth = pq.read_table(cohort / "truth" / "clips.parquet").to_pandas()
    clips = truth[(truth.view == "A4C") & ~truth.is_colour].head(4).reset_index(drop=True)

    paths = []
    for row in clips.itertuples():  # masked exactly as `masked_clips` masks (the same find_sector / preprocess)
        path = store.array_dir("masked_clips") / "00" / f"{row.sop_instance_uid}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, masked_frames_from_dicom(cohort / "dicom" / row.relative_path))
        paths.append(path.relative_to(store.path).as_posix())
    n = len(clips)
    store.write_table("dicom_instances_by_shard", _with_nulls(pa.table({
        "file_sha256": [f"sha{i}" for i in range(n)],
        "relative_path": [pseudonymise_path(p, PATH_KEY) for p in clips.relative_path],
        "file_size": [1] * n, "file_mtime_ns": [0] * n, "shard": ["00"] * n,
        "sop_instance_uid": clips.sop_instance_uid.tolist(), "study_instance_uid": clips.study_instance_uid.tolist(),
        **lineage(n)}), "dicom_instances"), "00", schema_name="dicom_instances")

    csv = pd.read_csv(cohort / "reports.csv", dtype=str)
    linked = csv[csv.study_instance_uid.notna()].reset_index(drop=True)
    m = len(csv)
    store.write_table("reports", _with_nulls(pa.table({
        "report_id": csv.report_id.tolist(), "source_file": ["reports.csv"] * m, "source_row": list(range(m)),
        "report_text": csv.report_text.tolist(), **lineage(m)}), "reports"))
    store.write_table("report_links", _with_nulls(pa.table({
        "report_id": csv.report_id.tolist(),
        "study_instance_uid": [None if pd.isna(uid) else uid for uid in csv.study_instance_uid],
        "candidate_count": [1] * m, **lineage(m)}), "report_links"))

    record = record_tiny_model(store)
    model, tokenizer = registry.load_model(record), registry.load_tokenizer(record)
    update_clip_embeddings(store, "bpe", record.model_id,
                           pa.table({"sop_instance_uid": clips.sop_instance_uid.tolist(), "shard": ["00"] * n,
                                     "clip_path": paths}),
                           ClipEmbedder(model, num_workers=0), run_id="test", code_version="test")
    embed_new(EmbeddingStore(store, REPORT_TABLE, record.model_id), report_partition("bpe"),
              list(zip(linked.report_id, linked.report_text)),
              lambda chunk: embed_reports(model, tokenizer, chunk, tokenizer.evaluation_texts),
              id_of=lambda report: report[0], run_id="test", code_version="test")
    for index, table, content in ((VIDEO_INDEX, CLIP_TABLE, "clips"), (REPORT_INDEX, REPORT_TABLE, "reports")):
        ids, vectors = EmbeddingStore(store, table, record.model_id).load_vectors()
        refresh_index(index_dir(store, index, "bpe"), ids, vectors, content=content, model_id=record.model_id,
                      config=IndexConfig())
    return store, cohort, clips, linked, record, model, tokenizer


def _with_nulls(table: pa.Table, name: str) -> pa.Table:
    """``table`` with every other column of the declared schema as nulls."""
    from echo_pipeline.schemas import TABLES

    schema = TABLES[name]
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
    return table


def brute_force(query: np.ndarray, ids: list[str], vectors: np.ndarray, k: int) -> list[str]:
    scores = vectors @ (query / np.linalg.norm(query))
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def cli(capsys, *args) -> tuple[int, list[str], str]:
    code = echo_pipeline_cli.main(["search", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_clip_query_prints_the_nearest_reports(world, capsys):
    store, _, clips, linked, record, _, _ = world
    uid = clips.sop_instance_uid[0]
    code, lines, _ = cli(capsys, "--clip", uid, "--data-root", str(store.path), "-k", "3")
    assert code == 0
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    scores = [float(r[1]) for r in rows]
    assert scores == sorted(scores, reverse=True)

    clip_ids, clip_vectors = EmbeddingStore(store, CLIP_TABLE, record.model_id).load_vectors()
    report_ids, report_vectors = EmbeddingStore(store, REPORT_TABLE, record.model_id).load_vectors()
    expected = brute_force(clip_vectors[clip_ids.index(uid)], report_ids, report_vectors, 3)
    assert [r[2] for r in rows] == expected
    best = linked.set_index("report_id").loc[expected[0]]
    assert rows[0][3] == best.study_instance_uid
    assert lines[2].split(best.study_instance_uid, 1)[1].strip()[:30] == " ".join(best.report_text.split())[:30]


def test_text_query_prints_the_nearest_clips_with_their_files(world, capsys):
    store, _, clips, _, record, model, tokenizer = world
    code, lines, _ = cli(capsys, "--text", QUERY, "--data-root", str(store.path), "-k", "2")
    assert code == 0
    rows = [line.split() for line in lines[2:]]
    query = embed_texts(model, tokenizer, tokenizer.evaluation_texts(QUERY)).mean(axis=0)
    expected = brute_force(query, *EmbeddingStore(store, CLIP_TABLE, record.model_id).load_vectors(), 2)
    assert [r[2] for r in rows] == expected
    truth = clips.set_index("sop_instance_uid")
    assert [(r[3], r[4]) for r in rows] == [(truth.study_instance_uid[u], pseudonymise_path(truth.relative_path[u], PATH_KEY))
                                            for u in expected]  # the stored path is the pseudonymised one


def test_dicom_query_is_embedded_like_the_stored_clip(world, capsys):
    store, cohort, clips, _, record, _, _ = world
    searcher = Searcher(store.path, "bpe", device="cpu")
    by_id = searcher.reports_for_clip(clips.sop_instance_uid[1], k=5)
    by_file = searcher.reports_for_dicom(cohort / "dicom" / clips.relative_path[1], k=5)
    assert [h.report_id for h in by_file] == [h.report_id for h in by_id]
    assert np.allclose([h.score for h in by_file], [h.score for h in by_id], atol=1e-4)

    code, lines, _ = cli(capsys, "--dicom", str(cohort / "dicom" / clips.relative_path[1]),
                         "--data-root", str(store.path), "-k", "5")
    assert code == 0 and [line.split()[2] for line in lines[2:]] == [h.report_id for h in by_id]


def test_errors_exit_2_with_one_line_saying_what_to_do(world, capsys, tmp_path):
    store, cohort, _, _, record, _, _ = world
    code, _, err = cli(capsys, "--clip", "1.2.3.unknown", "--data-root", str(store.path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "clip_embeddings[bpe]" in err

    not_dicom = tmp_path / "notes.dcm"
    not_dicom.write_text("not a DICOM file")
    code, _, err = cli(capsys, "--dicom", str(not_dicom), "--data-root", str(store.path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "notes.dcm" in err

    empty = DataRoot(tmp_path / "empty")
    empty.path.mkdir()
    code, _, err = cli(capsys, "--text", QUERY, "--data-root", str(empty.path))
    assert code == 2 and "clip_model[bpe]" in err  # no model yet

    model_variants.write_record(empty, record)
    code, _, err = cli(capsys, "--text", QUERY, "--data-root", str(empty.path))
    assert code == 2 and "no index yet" in err and "video_index[bpe]" in err

    code, _, err = cli(capsys, "--text", QUERY, "--data-root", str(tmp_path / "missing"))
    assert code == 2 and "does not exist" in err

    with pytest.raises(SystemExit):  # exactly one query kind
        echo_pipeline_cli.main(["search", "--clip", "x", "--text", "y"])
