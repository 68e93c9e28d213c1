"""Classification, de-duplication and incremental shard ingestion on real and deliberately broken files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, UltrasoundMultiFrameImageStorage, generate_uid

from echo_pipeline.ingest import REASONS, ShardTables, ingest_shard, merge_shards, scan_dicom_root
from echo_pipeline.ingest.header import identifying_values, scrub
from echo_pipeline.privacy import pseudonymise
from echo_pipeline.schemas import DICOM_INSTANCES, INGEST_QUARANTINE
from echo_pipeline.sharding import shard_of
from echo_pipeline.source_paths import pseudonymise_path
from echo_pipeline.storage import DataRoot

DATA = Path(pydicom.data.__file__).parent
KEY = b"test-key"
PHI = {"PatientName": "Doe^Johnathan", "PatientID": "PID-SECRET-123", "AccessionNumber": "ACC-SECRET-9", "PatientBirthDate": "19700101"}


def us_dataset(frames: int = 4, rows: int = 32, cols: int = 40, *, jpeg: bool = True, seed: int = 0, **attributes) -> Dataset:
    """A small ultrasound multi-frame clip carrying identifying tags, JPEG baseline or native RGB."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UltrasoundMultiFrameImageStorage, generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = UltrasoundMultiFrameImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.StudyDate = generate_uid(), generate_uid(), "US", "20210314"
    ds.Manufacturer, ds.ManufacturerModelName, ds.BurnedInAnnotation = "Acme", "Echo 1", "YES"
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel, ds.PlanarConfiguration = rows, cols, frames, 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    clip = np.random.default_rng(seed).integers(0, 256, (frames, rows, cols, 3), dtype=np.uint8)
    if jpeg:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = encapsulate([cv2.imencode(".jpg", f)[1].tobytes() for f in clip], has_bot=True)
        ds["PixelData"].VR = "OB"
    else:
        ds.PhotometricInterpretation, ds.PixelData = "RGB", clip.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


#: Pseudonymised path → raw path of every file ingest_all has seen: rows carry only pseudonyms
#: (echo_pipeline.source_paths); the tests name files by their raw paths.
_RAW: dict[str, str] = {}


def pseudonymised(path: str) -> str:
    return pseudonymise_path(path, KEY)


def raw(paths) -> tuple[str, ...]:
    return tuple(_RAW[p] for p in paths)


def ingest_all(root: Path, n_shards: int = 1, previous: ShardTables | None = None, run_id: str = "run-1") -> ShardTables:
    assert n_shards == 1 or previous is None
    _RAW.update({pseudonymised(f.relative_path): f.relative_path
                 for files in scan_dicom_root(root, n_shards).values() for f in files})
    parts = [ingest_shard(root, files, previous, KEY, run_id, "ingest-test") for files in scan_dicom_root(root, n_shards).values()]
    return parts[0] if n_shards == 1 else merge_shards(parts, run_id, "ingest-test")


def by_path(tables: ShardTables) -> dict[str, dict]:
    """Rows by raw path, with duplicate_of raw as well."""
    rows = {_RAW[r["relative_path"]]: {**r, "table": "instances"} for r in tables.instances.to_pylist()}
    rows.update({_RAW[r["relative_path"]]: {**r, "table": "quarantine"} for r in tables.quarantine.to_pylist()})
    for row in rows.values():
        if row.get("duplicate_of"):
            row["duplicate_of"] = _RAW[row["duplicate_of"]]
    return rows


def test_every_pydicom_test_file_is_classified_once(tmp_path):
    for sub in ("test_files", "charset_files", "palettes"):
        shutil.copytree(DATA / sub, tmp_path / sub)
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())

    tables = ingest_all(tmp_path, n_shards=4)
    paths = tables.instances.column("relative_path").to_pylist() + tables.quarantine.column("relative_path").to_pylist()
    assert sorted(raw(paths)) == on_disk  # every file in exactly one of the two outputs
    assert tables.instances.num_rows >= 40
    rows = by_path(tables)
    assert set(tables.quarantine.column("reason").to_pylist()) <= set(REASONS) - {"unexpected_error", "read_error"}
    expected = {
        "test_files/MR_truncated.dcm": "truncated",
        "test_files/rtplan_truncated.dcm": "truncated",
        "test_files/test-SR.dcm": "non_image_object",
        "test_files/waveform_ecg.dcm": "non_image_object",
        "test_files/README.txt": "not_dicom",
        "test_files/zipMR.gz": "not_dicom",
        "test_files/rtstruct.dcm": "missing_file_meta",
        "test_files/dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000000": "no_pixel_data",
        "test_files/MR_small_RLE.dcm": "duplicate",  # same SOP instance UID as MR_small.dcm, other bytes
    }
    for path, reason in expected.items():
        assert rows[path].get("reason") == reason, (path, rows[path].get("reason"), rows[path].get("message"))
    uid = rows["test_files/MR_small_RLE.dcm"]["sop_instance_uid"]
    copies = [path for path, row in rows.items() if row.get("sop_instance_uid") == uid]
    kept = min(copies, key=pseudonymised)  # the copy with the smallest pseudonymised path
    assert "test_files/MR_small.dcm" in copies and rows[kept]["table"] == "instances"
    assert rows["test_files/MR_small_RLE.dcm"]["duplicate_of"] == kept
    assert rows["test_files/examples_ybr_color.dcm"]["table"] == "instances"
    assert rows["test_files/examples_ybr_color.dcm"]["frames"] == 30
    assert all(r["message"] for r in tables.quarantine.to_pylist())
    assert tables.instances.schema.equals(DICOM_INSTANCES) and tables.quarantine.schema.equals(INGEST_QUARANTINE)


@pytest.fixture()
def broken_archive(tmp_path) -> Path:
    root = tmp_path / "dicom"
    clip = us_dataset(FrameTime=40.0)
    save(clip, root / "a" / "clip")  # no extension
    (root / "b").mkdir()
    shutil.copy(root / "a" / "clip", root / "b" / "copy.dcm")
    other = us_dataset(seed=1, CineRate=25)
    other.SOPInstanceUID = clip.SOPInstanceUID  # same UID, different bytes
    save(other, root / "c" / "same_uid.dcm")
    (root / "empty.dcm").write_bytes(b"")
    (root / "notes.txt").write_text("patient list\nnothing to see\n")
    (root / "image.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1].tobytes())
    data = (DATA / "test_files" / "examples_ybr_color.dcm").read_bytes()
    (root / "cut").write_bytes(data[: len(data) * 6 // 10])  # multi-frame JPEG cut inside its pixel data
    no_pixels = us_dataset()
    del no_pixels.PixelData
    save(no_pixels, root / "no_pixels.dcm")
    mpeg = us_dataset(jpeg=False)
    mpeg.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # H.264: no decoder in pydicom
    mpeg.PixelData = encapsulate([b"\x00\x00\x00\x01" + bytes(64)])
    save(mpeg, root / "video.dcm")
    short = us_dataset(jpeg=False, frames=3)
    short.NumberOfFrames = 5
    save(short, root / "short.dcm")
    shutil.copy(DATA / "test_files" / "test-SR.dcm", root / "report.dcm")
    return root


def test_broken_files_get_their_reason(broken_archive):
    # The kept copy is the one with the smallest pseudonymised path; with this key that is a/clip.
    assert pseudonymised("a/clip") < pseudonymised("b/copy.dcm") < pseudonymised("c/same_uid.dcm")
    rows = by_path(ingest_all(broken_archive))
    reasons = {path: row.get("reason", "instance") for path, row in rows.items()}
    assert reasons == {
        "a/clip": "instance",
        "b/copy.dcm": "duplicate",
        "c/same_uid.dcm": "duplicate",
        "empty.dcm": "empty",
        "notes.txt": "not_dicom",
        "image.png": "not_dicom",
        "cut": "truncated",
        "no_pixels.dcm": "no_pixel_data",
        "video.dcm": "unsupported_transfer_syntax",
        "short.dcm": "inconsistent_pixel_data",
        "report.dcm": "non_image_object",
    }
    assert rows["b/copy.dcm"]["duplicate_of"] == "a/clip" and "same bytes" in rows["b/copy.dcm"]["message"]
    assert rows["c/same_uid.dcm"]["duplicate_of"] == "a/clip" and "different bytes" in rows["c/same_uid.dcm"]["message"]
    assert "PNG" in rows["image.png"]["message"] and "5 frame(s)" in rows["short.dcm"]["message"]
    assert "(FFFE,E0DD)" in rows["cut"]["message"] and rows["empty.dcm"]["file_sha256"] is not None

    kept = rows["a/clip"]
    assert kept["frame_rate"] == pytest.approx(25.0) and kept["frame_rate_source"] == "FrameTime"
    assert kept["patient_key"] == pseudonymise(PHI["PatientID"], KEY, "patient")
    assert kept["accession_key"] == pseudonymise(PHI["AccessionNumber"], KEY, "accession")
    assert str(kept["study_date"]) == "2021-03-14" and kept["frames"] == 4 and kept["burned_in_annotation"] == "YES"
    assert kept["transfer_syntax_uid"] == JPEGBaseline8Bit and kept["photometric_interpretation"] == "YBR_FULL_422"


def test_progress_is_reported_up_to_the_total(broken_archive):
    calls = []
    files = scan_dicom_root(broken_archive, 1)["00"]
    ingest_shard(broken_archive, files, None, KEY, "run-1", "ingest-test", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (len(files), len(files)) and [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_no_identifier_reaches_the_tables(broken_archive):
    tables = ingest_all(broken_archive)
    text = " ".join(str(v) for t in (tables.instances, tables.quarantine) for row in t.to_pylist() for v in row.values())
    for value in [*PHI.values(), "Johnathan"]:
        assert value not in text


def test_messages_are_scrubbed_of_identifiers():
    secrets = identifying_values(us_dataset())
    message = scrub("pydicom said: bad value 'Doe^Johnathan' near PID-SECRET-123 / Johnathan", secrets)
    assert "Johnathan" not in message and "PID-SECRET-123" not in message and "pydicom said" in message


def test_tables_survive_a_parquet_round_trip(broken_archive, tmp_path):
    """The Dagster asset stores each shard as Parquet and passes it back as ``previous``."""
    store = DataRoot(tmp_path / "out")
    first = ingest_all(broken_archive)
    store.write_table("dicom_instances_by_shard", first.instances, "00", schema_name="dicom_instances")
    store.write_table("ingest_quarantine_by_shard", first.quarantine, "00", schema_name="ingest_quarantine")
    loaded = ShardTables.load(store, "00", "dicom_instances_by_shard", "ingest_quarantine_by_shard")
    assert loaded.instances.equals(first.instances) and loaded.quarantine.equals(first.quarantine)
    again = ingest_all(broken_archive, previous=loaded, run_id="run-2")
    assert again.processed == () and again.instances.equals(first.instances)
    assert ShardTables.load(store, "01", "dicom_instances_by_shard", "ingest_quarantine_by_shard") is None


def test_region_and_frame_rate_sources(tmp_path):
    def region(fmt: int, x0: int, y0: int, x1: int, y1: int) -> Dataset:
        item = Dataset()
        item.RegionSpatialFormat = fmt
        item.RegionLocationMinX0, item.RegionLocationMinY0, item.RegionLocationMaxX1, item.RegionLocationMaxY1 = x0, y0, x1, y1
        return item

    regions = Sequence([region(1, 2, 3, 20, 25), region(3, 0, 0, 39, 31), region(1, 0, 0, 5, 5)])  # Doppler strip is largest
    save(us_dataset(SequenceOfUltrasoundRegions=regions, RecommendedDisplayFrameRate=50), tmp_path / "r.dcm")
    row = ingest_all(tmp_path).instances.to_pylist()[0]
    assert (row["region_x0"], row["region_y0"], row["region_x1"], row["region_y1"]) == (2, 3, 20, 25)
    assert row["frame_rate"] == 50 and row["frame_rate_source"] == "RecommendedDisplayFrameRate"


def without_run_id(table: pa.Table) -> pa.Table:
    return table.drop_columns(["run_id"])


def test_incremental_runs_reuse_rows_and_match_a_fresh_run(broken_archive):
    first = ingest_all(broken_archive, run_id="run-1")
    assert first.processed_count == 11

    again = ingest_all(broken_archive, previous=first, run_id="run-2")
    assert again.processed == ()  # nothing re-read, nothing decoded
    assert again.instances.equals(first.instances) and again.quarantine.equals(first.quarantine)

    save(us_dataset(seed=5), broken_archive / "d" / "new.dcm")
    grown = ingest_all(broken_archive, previous=again, run_id="run-3")
    assert raw(grown.processed) == ("d/new.dcm",)
    new_row = by_path(grown)["d/new.dcm"]
    assert new_row["table"] == "instances" and new_row["run_id"] == "run-3"
    assert by_path(grown)["a/clip"]["run_id"] == "run-1"

    (broken_archive / "notes.txt").write_text("a longer list, rewritten\n")  # changed size and mtime
    changed = ingest_all(broken_archive, previous=grown, run_id="run-3b")
    assert raw(changed.processed) == ("notes.txt",)
    grown = changed

    os.remove(broken_archive / "a" / "clip")  # the kept copy goes: its byte-identical copy takes over
    shrunk = ingest_all(broken_archive, previous=grown, run_id="run-4")
    assert raw(shrunk.processed) == ("b/copy.dcm",)
    rows = by_path(shrunk)
    assert rows["b/copy.dcm"]["table"] == "instances" and rows["c/same_uid.dcm"]["duplicate_of"] == "b/copy.dcm"
    fresh = ingest_all(broken_archive, run_id="run-5")
    assert without_run_id(shrunk.instances).equals(without_run_id(fresh.instances))
    assert without_run_id(shrunk.quarantine).equals(without_run_id(fresh.quarantine))


def test_two_fresh_runs_are_identical_but_for_run_id(broken_archive):
    one, two = ingest_all(broken_archive, run_id="a"), ingest_all(broken_archive, run_id="b")
    assert without_run_id(one.instances).equals(without_run_id(two.instances))
    assert without_run_id(one.quarantine).equals(without_run_id(two.quarantine))
    assert set(two.instances.column("run_id").to_pylist()) == {"b"}


def test_duplicates_across_shards_are_merged(broken_archive):
    # a copy whose path lands in another shard than the kept copy: the case the merge exists for
    copy = next(f"z/copy{i}" for i in range(100) if shard_of(f"z/copy{i}", 8) != shard_of("a/clip", 8)
                and pseudonymised(f"z/copy{i}") > pseudonymised("a/clip"))
    (broken_archive / "z").mkdir()
    shutil.copy(broken_archive / "a" / "clip", broken_archive / copy)
    merged = by_path(ingest_all(broken_archive, n_shards=8))
    assert merged["a/clip"]["table"] == "instances"
    assert merged[copy]["reason"] == "duplicate" and merged[copy]["duplicate_of"] == "a/clip"
    assert sum(len(files) for files in scan_dicom_root(broken_archive, 8).values()) == len(merged)


def test_scan_lists_regular_files_only(tmp_path):
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "IM0001").write_bytes(b"1")
    (tmp_path / ".hidden").write_bytes(b"2")
    os.symlink(tmp_path / ".hidden", tmp_path / "link")
    shards = scan_dicom_root(tmp_path, 3)
    assert sorted(shards) == ["00", "01", "02"]
    files = {f.relative_path: f for files in shards.values() for f in files}
    assert sorted(files) == [".hidden", "x/y/IM0001"]
    assert files["x/y/IM0001"].shard == shard_of("x/y/IM0001", 3) and files["x/y/IM0001"].size == 1


def test_damaged_copies_never_crash_and_cuts_read_as_truncated(tmp_path):
    """A small deterministic fuzz: cut and overwritten copies of real files are each classified, by a checked reason."""
    rng = np.random.default_rng(0)
    sources = ["examples_ybr_color.dcm", "SC_rgb_rle_2frame.dcm", "MR_small.dcm", "image_dfl.dcm", "JPEG2000.dcm"]
    cut_files = []
    for i in range(120):
        name = sources[i % len(sources)]
        data = bytearray((DATA / "test_files" / name).read_bytes())
        pixel_start = pydicom.dcmread(DATA / "test_files" / name).get_item(0x7FE00010).value_tell
        if i % 2:  # cut past the start of Pixel Data (for the deflated file: somewhere in its zlib stream)
            cut = int(rng.integers(pixel_start + 1, len(data) - 2))
            data = data[:cut]
            cut_files.append(f"f{i:03d}")
        else:
            for position in rng.integers(132, len(data), size=8):
                data[position] = int(rng.integers(0, 256))
        (tmp_path / f"f{i:03d}").write_bytes(bytes(data))
    tables = ingest_all(tmp_path)
    rows = by_path(tables)
    assert len(rows) == 120
    assert "unexpected_error" not in tables.quarantine.column("reason").to_pylist()
    assert {path: rows[path].get("reason") for path in cut_files} == {path: "truncated" for path in cut_files}
