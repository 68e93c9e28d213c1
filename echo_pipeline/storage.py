"""Where stage outputs live under a data root, and how they are written.

Layout (documented in docs/tables.md):

    DATA_ROOT/
      tables/<dataset>/part-<partition>.parquet   one file per partition ("all" when unpartitioned)
      arrays/<stage>/...                          large arrays: masks, frames, embeddings, checkpoints
      echo.duckdb                                 the catalog users query (views over tables/)

`DataRoot` is the one owner of these names: nothing else spells `part-*.parquet` or the root's top-level
folders (a model variant's own files are named by `echo_pipeline.model_variants`, on top of `array_dir` and
the partition methods; stored rows hold paths relative to the root).

Every write goes to a temporary file first and is renamed into place, so a killed process leaves either the
old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from echo_pipeline.identifiers import guard
from echo_pipeline.safe_paths import contained, safe_join
from echo_pipeline.schemas import TABLES

UNPARTITIONED = "all"
PARTITION_PREFIX, PARTITION_SUFFIX = "part-", ".parquet"  # tables/<dataset>/part-<partition>.parquet


@dataclass(frozen=True)
class DataRoot:
    """The folder holding one pipeline's outputs."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path).resolve())

    @property
    def catalog_path(self) -> Path:
        return self.path / "echo.duckdb"

    @property
    def tables_dir(self) -> Path:
        """tables/: one folder per dataset."""
        return self.path / "tables"

    def dataset_dir(self, dataset: str) -> Path:
        return safe_join(self.tables_dir, dataset)

    def partition_file(self, dataset: str, partition: str = UNPARTITIONED) -> Path:
        return safe_join(self.dataset_dir(dataset), f"{PARTITION_PREFIX}{partition}{PARTITION_SUFFIX}")

    def partition_glob(self, dataset: str) -> Path:
        """A glob matching every partition file of ``dataset`` (what the catalog's views read)."""
        return self.dataset_dir(dataset) / f"{PARTITION_PREFIX}*{PARTITION_SUFFIX}"

    def partition_files(self, dataset: str, partition: str | None = None) -> list[Path]:
        """The partition files of ``dataset``, sorted; with ``partition``, that partition's file and those of
        its sub-partitions ``<partition>-<key>`` (a model variant's per-shard partitions). Temporary files of
        a write in progress never match."""
        if partition is None:
            return sorted(self.dataset_dir(dataset).glob(f"{PARTITION_PREFIX}*{PARTITION_SUFFIX}"))
        own = self.partition_file(dataset, partition)
        subs = self.dataset_dir(dataset).glob(f"{PARTITION_PREFIX}{partition}-*{PARTITION_SUFFIX}")
        return sorted({*([own] if own.is_file() else []), *subs})

    @staticmethod
    def partition_of(path: Path) -> str:
        """The partition key a partition file holds (``part-bpe-00.parquet`` → ``bpe-00``)."""
        return Path(path).name.removeprefix(PARTITION_PREFIX).removesuffix(PARTITION_SUFFIX)

    def array_dir(self, stage: str) -> Path:
        directory = safe_join(self.path, "arrays", stage)
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def write_table(self, dataset: str, table: pa.Table, partition: str = UNPARTITIONED, *, schema_name: str | None = None) -> Path:
        """Write one partition of a dataset atomically, cast to its declared schema.

        Raises identifiers.RawIdentifierError, writing nothing, when a value looks like a raw identifier: the
        rule runs before publishing, so no Parquet file or catalog view ever holds one."""
        schema = TABLES[schema_name or dataset]
        target = self.partition_file(dataset, partition)
        conformed = conform(table, schema)
        guard(conformed, dataset)
        with atomic_path(target, root=self.path) as tmp:
            pq.write_table(conformed, tmp, compression="zstd")
        return target

    def read_table(self, dataset: str, partition: str | None = None) -> pa.Table | None:
        """One partition, or all partitions concatenated; None when nothing was written yet."""
        if partition is not None:
            path = self.partition_file(dataset, partition)
            return pq.read_table(path) if path.exists() else None
        files = self.partition_files(dataset)
        if not files:
            return None
        # Partitions written before a column was added lack it: promote (missing columns read as null), as the
        # catalog's views do with union_by_name.
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")

    def has_dataset(self, dataset: str) -> bool:
        return bool(self.partition_files(dataset))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB blocks: the id of source files, weights and indexes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(4 << 20):
            digest.update(block)
    return digest.hexdigest()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select and cast the columns of ``schema`` in its order; a missing column is an error, not a null."""
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"table lacks declared columns {missing}; has {table.column_names}")
    return table.select(schema.names).cast(schema)


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table of the declared schema from row dicts (an empty list gives an empty typed table)."""
    return pa.Table.from_pylist(rows, schema=schema)


@contextmanager
def atomic_path(target: Path, *, root: Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only if the block succeeds.

    With ``root``, ``target`` must resolve inside it (UnsafePathError otherwise, before any folder is made):
    writers whose file names derive from archive data pass the data root.
    """
    target = Path(target) if root is None else contained(target, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
