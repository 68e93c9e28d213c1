"""Reading and verifying a search index's sha256 manifest (the files of an index directory, not FAISS).

`echo_pipeline.search.index` writes the manifest last, after the files it names; here it is read back and
checked, so that staleness (`model_variants.staleness`) can tell a sound index from a corrupt one without
importing the search package above it.
"""

from __future__ import annotations

import json
from pathlib import Path

from echo_pipeline.errors import IndexIntegrityError
from echo_pipeline.storage import file_sha256

MANIFEST_FILE = "manifest.json"


def read_manifest(index_dir: Path) -> dict:
    """The manifest of ``index_dir`` (IndexIntegrityError when missing or unreadable)."""
    path = Path(index_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        for key in ("index_file", "index_sha256", "ids_file", "ids_sha256", "n_vectors", "dim", "kind"):
            manifest[key]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IndexIntegrityError(f"{path}: index manifest missing or unreadable ({e}); rebuild the index "
                                  "(materialise video_index / report_index)") from e
    return manifest


def verify_index(index_dir: Path) -> dict:
    """Return the manifest after checking both files against their recorded sha256."""
    manifest = read_manifest(index_dir)
    for file_key, sha_key in (("index_file", "index_sha256"), ("ids_file", "ids_sha256")):
        path = Path(index_dir) / manifest[file_key]
        if not path.is_file():
            raise IndexIntegrityError(f"{path}: file named by the manifest is missing; rebuild the index")
        actual = file_sha256(path)
        if actual != manifest[sha_key]:
            raise IndexIntegrityError(
                f"{path}: sha256 {actual[:12]}… does not match the manifest's {manifest[sha_key][:12]}… "
                "(corrupt or modified); rebuild the index (materialise video_index / report_index)")
    return manifest
