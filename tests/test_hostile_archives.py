"""Hostile and messy archives (issue 17, part 1): each probe written as the few files that reproduce it.

- UIDs that are paths (`../../x`, absolute, `zz/../<another clip's UID>`), hold a NUL byte or run to 5,000
  characters are quarantined `invalid_uid`; even when fed to masking directly, no file lands outside the
  data root and no clip overwrites another.
- A small deflated file that inflates far past the budget is `too_large`, and classifying it stays within
  bounded memory.
- A folder named in Latin-1 bytes, a symlink and a FIFO: the real command ingests the rest, quarantines the
  undecodable name (`unreadable_path`) and lists the others in `scan_skipped`.
- Every clip that enters masking ends in `masked_clips` or `mask_quarantine`.
- Reports CSV: headers that normalise to one name are refused with both names; an unclosed quote, a row with
  an extra field, a repeated header row, an oversized field each cost their own row only.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tracemalloc
import zlib
from pathlib import Path

import duckdb
import pydicom
import pytest
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid
from test_ingest_classify import save, us_dataset
from test_masking import moving_fan, write_rgb_dicom

import echo_pipeline_cli
from echo_pipeline import fingerprints, masking
from echo_pipeline.ingest import ScannedFile, classify_file, ingest_shard, scan_archive
from echo_pipeline.ingest.uids import uid_problem
from echo_pipeline.masking.geometry import Fan
from echo_pipeline.masking.sectors import ClipSource, sector_tables
from echo_pipeline.errors import InputContractError
from echo_pipeline.privacy import KEY_ENV_VAR, load_or_create_key, pseudonymise_path
from echo_pipeline.reports import read_reports
from echo_pipeline.reports.csv_records import MAX_FIELD_CHARS
from echo_pipeline.reports.reading import QUARANTINE_REASONS as REPORT_REASONS
from echo_pipeline.schemas import TABLES

KEY = b"test-key"
VERSION = masking.CODE_VERSION


def files_under(top: Path) -> set[Path]:
    """Every regular file below ``top`` (the `find -type f` of the issue's probe)."""
    return {Path(folder) / name for folder, _, names in os.walk(top) for name in names}


def fan_clip(path: Path, uid: str, seed: int) -> Path:
    """A native RGB US clip with a moving fan (maskable), written with ``uid`` as SOP, study and series UID."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rgb_dicom(path, moving_fan(Fan(130 + seed, 6, 170, -40, 40), 200, 260, 8, seed))
    ds = pydicom.dcmread(path)
    with config.disable_value_validation():  # the hostile values are the point
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.save_as(path, enforce_file_format=True)
    return path


def test_uid_syntax_follows_ps3_5():
    assert uid_problem("1.2.840.10008.5.1.4.1.1.3.1") is None and uid_problem("0.0") is None
    assert uid_problem("1.2.840.0113654.2.70.1") is None  # a leading zero, as some vendors write: kept
    for bad in ("", "1..2", ".1", "1.", "1.2a", "1.2 3", "1" * 65, "../../x", "1.2\x003"):
        assert uid_problem(bad) is not None, bad


def test_hostile_uids_are_quarantined_and_no_file_leaves_the_data_root(tmp_path):
    archive, data_root = tmp_path / "archive", tmp_path / "data"
    good = [generate_uid() for _ in range(2)]
    hostile = {
        "dotdot": "../../outside/x",
        "absolute": str(tmp_path / "absolute" / "x"),
        "overwrite": f"zz/../{good[0]}",
        "nul": "1.2.3\x00.4",
        "long": "1." * 2500,
    }
    paths = {uid: fan_clip(archive / f"good{i}.dcm", uid, i) for i, uid in enumerate(good)}
    paths |= {uid: fan_clip(archive / f"{name}.dcm", uid, 5 + i) for i, (name, uid) in enumerate(hostile.items())}

    files = scan_archive(archive, 1).files["00"]
    tables = ingest_shard(archive, files, None, KEY, "run", "ingest-test")
    quarantine = {r["relative_path"]: r for r in tables.quarantine.to_pylist()}
    assert sorted(tables.instances.column("sop_instance_uid").to_pylist()) == sorted(good)
    assert {pseudonymise_path(f"{name}.dcm", KEY) for name in hostile} == set(quarantine)
    for row in quarantine.values():
        assert row["reason"] == "invalid_uid" and row["sop_instance_uid"] is None and len(row["message"]) <= 500

    # Masking fed the hostile UIDs directly (as if ingestion had let them through) still writes inside the root.
    sources = [ClipSource(uid, hashlib.sha256(p.read_bytes()).hexdigest(), "00", str(p)) for uid, p in paths.items()]
    common = {"data_root": data_root, "run_id": "r", "code_version": VERSION, "workers": 1}
    masks, mask_quarantine, _ = sector_tables(sources, None, None, mask_dir=data_root / "arrays" / "m", **common)
    assert masks.num_rows == len(sources) and mask_quarantine.num_rows == 0
    jobs = [masking.ClipJob(r["sop_instance_uid"], r["file_sha256"], "00", str(paths[r["sop_instance_uid"]]),
                            str(data_root / r["mask_path"]), r["method"], 30.0) for r in masks.to_pylist()]
    clips, failures = masking.masked_clip_table(jobs, None, clip_dir=data_root / "arrays" / "c", size=32, **common)
    assert failures == [] and clips.num_rows == len(sources)

    before_archive = set(paths.values())
    outside = {f for f in files_under(tmp_path) if data_root not in f.parents and f not in before_archive}
    assert outside == set()
    written = files_under(data_root)
    # One mask and one clip per UID: `zz/../<good UID>` did not overwrite the good clip's files.
    assert {data_root / p for p in masks.column("mask_path").to_pylist()} | \
        {data_root / p for p in clips.column("clip_path").to_pylist()} == written
    assert len(written) == 2 * len(sources)
    for path in written:
        assert path.stem.isalnum() and len(path.stem) == 32  # hashed names, no character of a UID


def deflated_bomb(path: Path, frames: int, rows: int = 256, columns: int = 256) -> Path:
    """A Deflated Explicit VR Little Endian US file whose zero frames inflate to rows x columns x frames bytes,
    written without ever holding the inflated data set in memory."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UltrasoundMultiFrameImageStorage, generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "US"
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = rows, columns, frames, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = "MONOCHROME2", 8, 8, 7, 0
    header = DicomBytesIO()
    header.is_little_endian, header.is_implicit_VR = True, False
    write_dataset(header, ds)
    size = rows * columns * frames
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflate.compress(header.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, size))]
    block = bytes(1 << 20)
    for start in range(0, size, len(block)):
        parts.append(deflate.compress(block[: min(len(block), size - start)]))
    parts.append(deflate.flush())
    meta_bytes = DicomBytesIO()
    write_file_meta_info(meta_bytes, meta)
    path.write_bytes(b"\0" * 128 + b"DICM" + meta_bytes.getvalue() + b"".join(parts))
    return path


def test_a_deflated_memory_bomb_is_too_large_within_bounded_memory(tmp_path):
    budget = 4 << 20
    bomb = deflated_bomb(tmp_path / "bomb.dcm", frames=1000)  # 64 MiB of frames from ~70 KB
    assert bomb.stat().st_size < 200_000
    scanned = ScannedFile("bomb.dcm", bomb.stat().st_size, 0, "00")
    tracemalloc.start()
    try:
        result = classify_file(tmp_path, scanned, KEY, "r", "v", max_decoded_bytes=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.quarantine["reason"] == "too_large" and "inflate" in result.quarantine["message"]
    assert peak < 3 * budget, f"classifying the bomb peaked at {peak} bytes"

    small = deflated_bomb(tmp_path / "small.dcm", frames=2, rows=16, columns=16)  # inflates within the budget
    scanned = ScannedFile("small.dcm", small.stat().st_size, 0, "00")
    assert classify_file(tmp_path, scanned, KEY, "r", "v", max_decoded_bytes=budget).instance is not None


def test_declared_geometry_over_the_budget_is_too_large_before_decoding(tmp_path):
    path = save(us_dataset(frames=4, rows=32, cols=40, jpeg=False), tmp_path / "clip.dcm")
    scanned = ScannedFile("clip.dcm", path.stat().st_size, 0, "00")
    declared = 4 * 32 * 40 * 3
    assert classify_file(tmp_path, scanned, KEY, "r", "v", max_decoded_bytes=declared).instance is not None
    refused = classify_file(tmp_path, scanned, KEY, "r", "v", max_decoded_bytes=declared - 1).quarantine
    assert refused["reason"] == "too_large" and str(declared) in refused["message"]


def test_odd_names_symlinks_and_fifos_never_stop_the_run(tmp_path, monkeypatch):
    archive, data_root = tmp_path / "archive", tmp_path / "data"
    save(us_dataset(seed=1), archive / "plain" / "a.dcm")
    latin1 = os.path.join(os.fsencode(archive), b"caf\xe9_\xc9COLE")
    os.makedirs(latin1)
    ds = us_dataset(seed=2)
    ds.save_as(os.path.join(latin1, b"b.dcm").decode("utf-8", "surrogateescape"), enforce_file_format=True)
    os.symlink(archive / "plain" / "a.dcm", archive / "link.dcm")
    os.symlink(tmp_path / "nowhere", archive / "dangling")
    os.mkfifo(archive / "pipe.dcm")
    reports = tmp_path / "reports.csv"
    reports.write_text("report_id,study_instance_uid,report_text\nr1,1.2.3,Normal study.\n")

    # The observation (`observe_inputs`) and the sharding of the odd name work.
    whole, per_shard, counts = fingerprints.dicom_root_fingerprints(archive, 3)
    assert sum(counts.values()) == 2 and len(per_shard) == 3
    monkeypatch.setenv(KEY_ENV_VAR, "test-key-not-a-secret")
    assert echo_pipeline_cli.main(["run", "--dicom-root", str(archive), "--reports", str(reports),
                                   "--data-root", str(data_root), "--select", "scan_skipped"]) == 0
    with duckdb.connect(str(data_root / "echo.duckdb"), read_only=True) as con:
        instances = con.sql("SELECT relative_path FROM dicom_instances").fetchall()
        quarantine = con.sql("SELECT relative_path, reason, message FROM ingest_quarantine").fetchall()
        skipped = con.sql("SELECT relative_path, reason, detail FROM scan_skipped ORDER BY 1").fetchall()
        skipped_columns = [c[0] for c in con.sql("DESCRIBE scan_skipped").fetchall()]
    run_key = load_or_create_key(data_root / "secrets" / "pseudonym.key")  # the key the run used (from the env)
    assert instances == [(pseudonymise_path("plain/a.dcm", run_key),)]
    assert [(path, reason) for path, reason, _ in quarantine] == [
        (pseudonymise_path("caf\\xe9_\\xc9COLE/b.dcm", run_key), "unreadable_path")]
    assert "UTF-8" in quarantine[0][2]
    assert [(path, reason) for path, reason, _ in skipped] == sorted(
        [(pseudonymise_path(name, run_key), reason)
         for name, reason in (("dangling", "symlink"), ("link.dcm", "symlink"), ("pipe.dcm", "special_file"))])
    assert skipped[2][2] == "FIFO" and skipped_columns == TABLES["scan_skipped"].names


@pytest.mark.skipif(os.geteuid() == 0, reason="root lists any folder")
def test_an_unlistable_sub_folder_is_a_skipped_row_not_a_failed_scan(tmp_path):
    save(us_dataset(), tmp_path / "ok" / "a.dcm")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        scan = scan_archive(tmp_path, 1)
    finally:
        locked.chmod(0o755)
    assert [f.relative_path for f in scan.files["00"]] == ["ok/a.dcm"]
    assert [(e.relative_path, e.reason) for e in scan.skipped["00"]] == [("locked", "unlistable_folder")]


def test_every_clip_entering_masking_ends_in_masked_clips_or_mask_quarantine(tmp_path):
    uids = [generate_uid() for _ in range(4)]
    paths = {uid: fan_clip(tmp_path / f"c{i}.dcm", uid, i) for i, uid in enumerate(uids)}
    sources = [ClipSource(uid, hashlib.sha256(p.read_bytes()).hexdigest(), "00", str(p)) for uid, p in paths.items()]
    common = {"data_root": tmp_path, "run_id": "r", "code_version": VERSION, "workers": 1}
    masks, quarantine, _ = sector_tables(sources, None, None, mask_dir=tmp_path / "masks", **common)
    assert masks.num_rows == 4
    jobs = [masking.ClipJob(r["sop_instance_uid"], r["file_sha256"], "00", str(paths[r["sop_instance_uid"]]),
                            str(tmp_path / r["mask_path"]), r["method"], 30.0) for r in masks.to_pylist()]
    paths[uids[1]].write_bytes(paths[uids[1]].read_bytes()[:2000])  # cut after masking: frames stop decoding
    (tmp_path / jobs[2].mask_path).write_bytes(b"not a png")  # the mask no longer reads
    clips, failures = masking.masked_clip_table(jobs, None, clip_dir=tmp_path / "clips", size=32, **common)
    failed = masking.clips.failure_table(failures, "r", VERSION)
    assert failed.schema == TABLES["mask_quarantine"]
    assert set(failed.column("reason").to_pylist()) == {"clip_not_written"} and "clip_not_written" in masking.REASONS
    assert clips.num_rows + quarantine.num_rows + failed.num_rows == len(sources)
    assert set(clips.column("sop_instance_uid").to_pylist()) | set(failed.column("sop_instance_uid").to_pylist()) == set(uids)


# --- reports CSV ------------------------------------------------------------------------------------------------
REPORTS_HEADER = "report_id,accession_number,report_text\n"


def read_csv_text(tmp_path: Path, text: str, name: str = "reports.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    reports, quarantine = read_reports(path, KEY, run_id="r", code_version="v")
    return reports.to_pylist(), quarantine.to_pylist()


def test_two_headers_that_normalise_to_one_are_refused_with_both_names(tmp_path):
    with pytest.raises(InputContractError) as refused:
        read_csv_text(tmp_path, "report_id,accession_number,report_text,REPORT_TEXT \nr1,A1,good,other\n")
    message = str(refused.value)
    assert "reports.csv" in message and "'report_text'" in message and "'REPORT_TEXT '" in message
    assert "rename or drop one" in message


def test_an_unclosed_quote_costs_its_own_row_only(tmp_path):
    reports, quarantine = read_csv_text(tmp_path, REPORTS_HEADER + (
        'r1,A1,"Normal LV size and function.\n'  # the quote never closes
        'r2,A2,"Mild MR, trace TR."\n'
        'r3,A3,LVEF 55%.\n'
        'r4,A4,"Two lines,\nstill one report."\n'))
    assert [r["report_id"] for r in reports] == ["r2", "r3", "r4"]
    assert reports[2]["report_text"] == "Two lines,\nstill one report."
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [(0, "unclosed_quote")]
    assert "line 2" in quarantine[0]["message"] and "reports.csv" in quarantine[0]["message"]


def test_malformed_rows_are_quarantined_one_by_one_with_their_line(tmp_path):
    reports, quarantine = read_csv_text(tmp_path, REPORTS_HEADER + (
        "r1,A1,Normal study.\n"
        "r2,A2,Mild MR.,an extra field\n"
        "r3,A3\n"
        "r4,A4,Small effusion.\n"))
    assert [r["report_id"] for r in reports] == ["r1", "r4"]
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [(1, "malformed_row"), (2, "malformed_row")]
    assert "line 3" in quarantine[0]["message"] and "4 fields, expected 3" in quarantine[0]["message"]
    assert "line 4" in quarantine[1]["message"]


def test_repeated_header_rows_are_dropped_and_counted(tmp_path):
    reports, quarantine = read_csv_text(tmp_path, REPORTS_HEADER + "r1,A1,Normal.\n" + REPORTS_HEADER.upper()
                                        + "r2,A2,Mild MR.\n" + REPORTS_HEADER)
    assert [r["report_id"] for r in reports] == ["r1", "r2"] and "report_id" not in {r["report_id"] for r in reports}
    assert [q["reason"] for q in quarantine] == ["repeated_header", "repeated_header"]


def test_oversized_fields_and_undecodable_lines_are_quarantined(tmp_path):
    huge = "x" * (MAX_FIELD_CHARS + 1)
    text = (REPORTS_HEADER + f"r1,A1,{huge}\n" + f'r2,A2,"{huge * 2}"\n').encode() + b"r3,A3,caf\xe9\nr4,A4,Normal.\n"
    reports, quarantine = read_csv_text(tmp_path, text)
    assert [r["report_id"] for r in reports] == ["r4"]
    assert [(q["source_row"], q["reason"]) for q in quarantine] == [
        (0, "field_too_large"), (1, "field_too_large"), (2, "bad_encoding")]
    assert all(reason in REPORT_REASONS for reason in ("field_too_large", "bad_encoding", "repeated_header"))


def test_crlf_and_cr_line_ends_and_a_bom_read_like_lf(tmp_path):
    rows = ['r1,A1,"Normal, as before."', "r2,A2,Mild MR."]
    expected = read_csv_text(tmp_path, REPORTS_HEADER + "\n".join(rows) + "\n", "lf.csv")[0]
    assert [r["report_text"] for r in expected] == ["Normal, as before.", "Mild MR."]
    for name, text in (("crlf.csv", "\r\n".join([REPORTS_HEADER.strip(), *rows]) + "\r\n"),
                       ("cr.csv", "\r".join([REPORTS_HEADER.strip(), *rows])),
                       ("bom.csv", "\ufeff" + REPORTS_HEADER + "\n".join(rows))):
        got = read_csv_text(tmp_path, text, name)[0]
        assert [{k: v for k, v in r.items() if k != "source_file"} for r in got] == \
            [{k: v for k, v in r.items() if k != "source_file"} for r in expected], name


def test_figure_names_from_a_prompts_file_cannot_leave_the_data_root(tmp_path):
    """Evaluation figures are named after prompt-file tasks, which a site's (or a published) prompts file sets."""
    from echo_pipeline.errors import UnsafePathError
    from echo_pipeline.evaluation.figure_files import save_figures
    from echo_pipeline.storage import DataRoot

    store = DataRoot(tmp_path / "data")
    assert save_figures(store, "bpe", {"roc_pacemaker": b"png"})["roc_pacemaker"].is_file()
    with pytest.raises(UnsafePathError):
        save_figures(store, "bpe", {"../../../../escaped": b"png"})
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))
