"""File names under a data root have one owner each: DataRoot for partition files, model_variants for a
variant's record, runs, embedding partitions and indexes. The layout on disk is the documented one."""

import duckdb
import pyarrow as pa
import pytest

from echo_pipeline import catalog, model_variants
from echo_pipeline.storage import DataRoot, atomic_path


def _write_splits(root: DataRoot, partition: str, studies: list[str]) -> None:
    n = len(studies)
    root.write_table("splits", pa.table({"study_instance_uid": studies, "patient_key": ["pat_" + "0" * 20] * n,
                                         "split": ["train"] * n, "run_id": ["r"] * n, "code_version": ["c"] * n}),
                     partition)


def test_partition_files_of_a_key_include_its_sub_partitions_only(tmp_path):
    root = DataRoot(tmp_path)
    for key in ("bpe", "bpe-00", "bpe-01", "template-00", "all"):
        root.partition_file("t", key).parent.mkdir(parents=True, exist_ok=True)
        root.partition_file("t", key).write_bytes(b"")
    (root.dataset_dir("t") / ".part-bpe-02.parquet.123.tmp").write_bytes(b"")  # a write in progress
    names = lambda files: [f.name for f in files]  # noqa: E731
    assert names(root.partition_files("t", "bpe")) == ["part-bpe-00.parquet", "part-bpe-01.parquet",
                                                      "part-bpe.parquet"]
    assert names(root.partition_files("t", "template")) == ["part-template-00.parquet"]
    assert len(root.partition_files("t")) == 5
    assert [root.partition_of(f) for f in root.partition_files("t", "bpe")] == ["bpe-00", "bpe-01", "bpe"]
    assert root.partition_files("missing") == [] and not root.has_dataset("missing")


def test_catalog_views_read_the_partition_glob(tmp_path):
    root = DataRoot(tmp_path)
    _write_splits(root, "00", ["1.2.3"])
    _write_splits(root, "01", ["1.2.4", "1.2.5"])
    assert root.partition_glob("splits").name == "part-*.parquet"
    assert root.read_table("splits").num_rows == 3
    catalog.publish(root)
    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM splits").fetchone()[0] == 3


def test_a_variants_files_keep_the_documented_layout(tmp_path):
    root = DataRoot(tmp_path)
    base = root.path / "arrays"
    assert model_variants.record_path(root, "bpe") == base / "clip_model" / "bpe" / "model.json"
    assert model_variants.run_dir(root, "template", "abc") == base / "clip_model" / "template" / "run-abc"
    assert model_variants.index_dir(root, model_variants.VIDEO_INDEX, "bpe") == base / "video_index" / "bpe"
    assert model_variants.eval_plots_dir(root, "bpe") == base / "eval_plots" / "bpe"
    assert model_variants.clip_partition("bpe", "03") == "bpe-03"
    with pytest.raises(ValueError, match="unknown model variant 'x/../y'"):
        model_variants.index_dir(root, model_variants.REPORT_INDEX, "x/../y")


def test_variant_partitions_never_mix_the_two_variants(tmp_path):
    root = DataRoot(tmp_path)
    for key in ("bpe-00", "bpe-01", "template-00"):
        with atomic_path(root.partition_file(model_variants.CLIP_TABLE, key)) as tmp:
            tmp.write_bytes(b"")
    assert model_variants.variant_partitions(root, model_variants.CLIP_TABLE, "bpe") == ["bpe-00", "bpe-01"]
    assert model_variants.variant_partitions(root, model_variants.CLIP_TABLE, "template") == ["template-00"]
    assert model_variants.variant_partitions(root, model_variants.REPORT_TABLE, "bpe") == []
