"""decode_frames against pydicom's own decoding, on pydicom's real test files and on made-up clips."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, UltrasoundMultiFrameImageStorage, generate_uid

from echo_pipeline.errors import DicomDecodeError
from echo_pipeline.ingest import decode_frames
from echo_pipeline.ingest.colour import RgbConverter, ybr_full_to_rgb
from echo_pipeline.ingest.decode import decode_path
from echo_pipeline.ingest.layout import pixel_layout

DATA = Path(pydicom.data.__file__).parent
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91"}


def corpus_files() -> list[Path]:
    return sorted(p for sub in ("test_files", "charset_files", "palettes") for p in (DATA / sub).rglob("*") if p.is_file())


def pydicom_reference(ds: Dataset) -> np.ndarray:
    """pydicom's default decode (YBR converted to RGB by pydicom), then the project's RGB uint8 rules."""
    layout = pixel_layout(ds, "reference")
    frames = ds.pixel_array
    frames = frames if layout.frames > 1 else frames[None]
    photometric = "RGB" if layout.photometric.startswith("YBR") else layout.photometric
    to_rgb = RgbConverter.for_dataset(ds, photometric, layout.bits_stored)
    return np.stack([to_rgb(frame) for frame in frames])


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's remarks on its odd test files
def test_every_pydicom_test_file_decodes_like_pydicom():
    paths_used, compared, refused = {}, 0, 0
    for path in corpus_files():
        try:
            ds = pydicom.dcmread(path)
            reference = pydicom_reference(ds)
        except Exception:  # not DICOM, no pixels, or pydicom itself cannot decode it
            if path.read_bytes()[128:132] == b"DICM" and "PixelData" in pydicom.dcmread(path):
                with pytest.raises(DicomDecodeError):  # refused with a reason, never another exception
                    decode_frames(path)
                refused += 1
            continue
        ours = decode_frames(path)
        assert ours.dtype == np.uint8 and ours.shape == reference.shape, path.name
        diff = np.abs(ours.astype(int) - reference.astype(int))
        lossy = ds.file_meta.TransferSyntaxUID in LOSSY or pixel_layout(ds, "").photometric.startswith("YBR")
        if lossy:  # different JPEG decoders / YBR rounding: tiny differences only
            assert diff.mean() < 0.5 and diff.max() <= 4, (path.name, diff.mean(), diff.max())
        else:
            assert diff.max() == 0, (path.name, diff.max())
        path_name = decode_path(ds)
        paths_used[path_name] = paths_used.get(path_name, 0) + 1
        compared += 1
    assert compared >= 60 and refused >= 1
    # The comparison must cover the project's own decoders, not only the pydicom fallback.
    assert paths_used.get("cv2-jpeg", 0) >= 5 and paths_used.get("pylibjpeg-rle", 0) >= 3 and paths_used.get("native", 0) >= 10


def test_jpeg_streams_whose_markers_mislead_libjpeg_fall_back_to_pydicom():
    assert decode_path(DATA / "test_files" / "SC_jpeg_no_color_transform.dcm") == "pydicom"
    assert decode_path(DATA / "test_files" / "SC_rgb_dcmtk_+eb+cy+np.dcm") == "cv2-jpeg"


def us_clip(frames: int, rows: int, cols: int, seed: int = 0, cell: int = 8) -> np.ndarray:
    """A random RGB clip smooth over ``cell`` pixels (JPEG-friendly), uint8 (frames, rows, cols, 3)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (frames, rows // cell, cols // cell, 3), dtype=np.uint8)
    return np.stack([cv2.resize(f, (cols, rows), interpolation=cv2.INTER_CUBIC) for f in small])


def write_clip(path: Path, clip: np.ndarray, transfer_syntax: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = UltrasoundMultiFrameImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if transfer_syntax == RLELossless else transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = UltrasoundMultiFrameImageStorage, meta.MediaStorageSOPInstanceUID, "US"
    ds.Rows, ds.Columns, ds.NumberOfFrames = clip.shape[1], clip.shape[2], len(clip)
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if transfer_syntax == JPEGBaseline8Bit:
        params = [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]
        frames = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params)[1].tobytes() for f in clip]
        ds.PhotometricInterpretation, ds.PixelData = "YBR_FULL_422", encapsulate(frames, has_bot=True)
        ds["PixelData"].VR = "OB"
    elif transfer_syntax == RLELossless:
        ds.PhotometricInterpretation = "RGB"
        ds.compress(RLELossless, clip, encoding_plugin="pylibjpeg", generate_instance_uid=False)
    else:
        ds.PhotometricInterpretation, ds.PixelData = "RGB", clip.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    "syntax, path_name, tolerance",
    [(JPEGBaseline8Bit, "cv2-jpeg", 3.0), (RLELossless, "pylibjpeg-rle", 0.0), (ExplicitVRLittleEndian, "native", 0.0)],
)
def test_multi_frame_clips_round_trip(tmp_path, syntax, path_name, tolerance):
    clip = us_clip(6, 64, 80)
    path = write_clip(tmp_path / "clip.dcm", clip, syntax)
    assert decode_path(path) == path_name
    ours = decode_frames(path)
    assert np.abs(ours.astype(int) - clip.astype(int)).mean() <= tolerance
    reference = pydicom_reference(pydicom.dcmread(path))
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 0.5

    picked = decode_frames(path, [5, 1, 1])  # only these frames, in this order, repeats allowed
    np.testing.assert_array_equal(picked, ours[[5, 1, 1]])

    buffer = np.zeros((2, 64, 80, 3), np.uint8)
    assert decode_frames(path, [0, 3], out=buffer) is buffer
    np.testing.assert_array_equal(buffer, ours[[0, 3]])


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, ExplicitVRLittleEndian])
def test_reduced_scale_matches_area_downsampling(tmp_path, syntax):
    path = write_clip(tmp_path / "clip.dcm", us_clip(3, 96, 120, cell=24), syntax)
    full = decode_frames(path)
    for scale in (2, 4):  # (at 1/8 libjpeg keeps one chroma value per 16 x 8 block: coarser colour)
        small = decode_frames(path, [2], scale=scale)
        assert small.shape == (1, -(-96 // scale), -(-120 // scale), 3)
        expected = cv2.resize(full[2], (small.shape[2], small.shape[1]), interpolation=cv2.INTER_AREA).astype(int)
        # libjpeg's reduced IDCT is not exactly an area average, but close next to any other picture
        assert np.abs(small[0].astype(int) - expected).mean() < 2.0
        assert np.abs(small[0].astype(int) - expected[::-1]).mean() > 20.0


def test_bad_requests_are_refused(tmp_path):
    path = write_clip(tmp_path / "clip.dcm", us_clip(2, 16, 16), ExplicitVRLittleEndian)
    with pytest.raises(IndexError):
        decode_frames(path, [2])
    with pytest.raises(ValueError):
        decode_frames(path, scale=3)
    with pytest.raises(ValueError):
        decode_frames(path, out=np.zeros((2, 16, 16, 3), np.float32))


def grey_dataset(pixels: np.ndarray, photometric: str, **attributes) -> Dataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = *pixels.shape, 1, photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = pixels.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def test_grey_rules_invert_monochrome1_and_window_deep_data():
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    inverted = decode_frames(grey_dataset(pixels, "MONOCHROME1"))[0]
    np.testing.assert_array_equal(inverted[..., 0], 255 - pixels)
    np.testing.assert_array_equal(inverted[..., 0], inverted[..., 2])

    deep = np.array([[0, 1000], [1500, 4000]], dtype=np.uint16)
    windowed = decode_frames(grey_dataset(deep, "MONOCHROME2", WindowCenter=1500, WindowWidth=1001))[0, ..., 0]
    assert windowed[0, 0] == 0 and windowed[1, 1] == 255 and 120 <= windowed[1, 0] <= 135
    stretched = decode_frames(grey_dataset(deep, "MONOCHROME2"))[0, ..., 0]  # no window: the frame's min-max
    assert stretched[0, 0] == 0 and stretched[1, 1] == 255


def test_ybr_conversion_matches_pydicom_within_rounding():
    ybr = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    ours = ybr_full_to_rgb(ybr).astype(int)
    reference = convert_color_space(ybr, "YBR_FULL", "RGB").astype(int)
    assert np.abs(ours - reference).max() <= 1


def _bytes_read() -> int:
    """Bytes this process has read through system calls so far (Linux /proc/self/io ``rchar``)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io to count bytes read")
@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, RLELossless, ExplicitVRLittleEndian])
def test_a_path_reads_only_the_requested_frames(tmp_path, syntax):
    frames = 30
    path = write_clip(tmp_path / "clip.dcm", us_clip(frames, 240, 320), syntax)
    whole = decode_frames(pydicom.dcmread(path))
    frame_share = path.stat().st_size / frames
    before = _bytes_read()
    picked = decode_frames(path, [2, 17])
    read = _bytes_read() - before
    np.testing.assert_array_equal(picked, whole[[2, 17]])
    # Two frames, the header and 8 bytes per item header; nowhere near the whole file.
    assert read < 3 * frame_share + 8192, (read, frame_share)
