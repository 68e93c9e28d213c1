"""Publishing the catalog never waits on a reader (issue: a reader stalls the pipeline).

A separate process holds `duckdb.connect(catalog, read_only=True)` open, as a user's shell would. Publishing
again must finish promptly (before, the writer waited up to 300 s for the reader's lock and then failed the
step); a new connection sees the new views, and the reader's open session keeps answering from the file it
opened.
"""

import subprocess
import sys
import threading

import duckdb

from echo_pipeline import catalog
from echo_pipeline.schemas import TABLES
from echo_pipeline.storage import DataRoot

READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
for line in sys.stdin:  # one query per line, answered on one line
    print(con.sql(line).fetchall(), flush=True)
"""


def _views(path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {row[0] for row in con.sql("SELECT table_name FROM information_schema.tables").fetchall()}


def test_publish_swaps_in_a_new_file_while_a_reader_holds_the_old_one_open(tmp_path):
    store = DataRoot(tmp_path)
    store.write_table("reports", TABLES["reports"].empty_table())
    assert catalog.publish(store) == ["reports"]
    reader = subprocess.Popen([sys.executable, "-c", READER, str(store.catalog_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        store.write_table("report_quarantine", TABLES["report_quarantine"].empty_table())
        published: list[list[str]] = []
        publisher = threading.Thread(target=lambda: published.append(catalog.publish(store)), daemon=True)
        publisher.start()
        publisher.join(timeout=60)  # the old writer waited 300 s here and then raised CatalogError
        assert not publisher.is_alive() and published == [["report_quarantine", "reports"]]
        assert _views(store.catalog_path) == {"reports", "report_quarantine"}
        # The open session still reads the file it opened: the old views, no error.
        reader.stdin.write("SELECT count(*) FROM reports\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "[(0,)]"
        reader.stdin.write("SELECT count(*) FROM information_schema.tables WHERE table_name = 'report_quarantine'\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "[(0,)]"
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert not list(tmp_path.glob(".echo.duckdb.publishing*"))  # nothing half-built is left beside the catalog


def test_a_publisher_killed_half_way_leaves_the_old_catalog_readable(tmp_path):
    """A leftover half-built file from a killed publisher is ignored by readers and replaced by the next publish."""
    store = DataRoot(tmp_path)
    store.write_table("reports", TABLES["reports"].empty_table())
    catalog.publish(store)
    (tmp_path / ".echo.duckdb.publishing").write_bytes(b"half a database")
    assert _views(store.catalog_path) == {"reports"}
    store.write_table("report_quarantine", TABLES["report_quarantine"].empty_table())
    catalog.publish(store)
    assert _views(store.catalog_path) == {"reports", "report_quarantine"}
