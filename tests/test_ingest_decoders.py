"""The decoder plugins: priority order per transfer syntax, unavailable plugins skipped, same pixels either way."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid

from echo_pipeline.ingest import decode_frames
from echo_pipeline.ingest.decoders import DECODERS, decoder_for, plugin_for, plugin_named, supported_transfer_syntaxes
from echo_pipeline.ingest.layout import encapsulated_frames, pixel_layout
from echo_pipeline.ingest.syntaxes import (CV2_JPEG, NATIVE, NATIVE_SYNTAXES, PYDICOM, RLE, pydicom_can_decode,
                                           rle_package_available)

DATA = Path(pydicom.data.__file__).parent / "test_files"


def test_priority_order_is_native_cv2_rle_then_pydicom():
    assert [p.name for p in DECODERS] == [NATIVE, CV2_JPEG, RLE, PYDICOM]
    for syntax in NATIVE_SYNTAXES:
        assert decoder_for(syntax) == NATIVE
    assert decoder_for(uid.JPEGBaseline8Bit) == (CV2_JPEG if pydicom_can_decode(uid.JPEGBaseline8Bit) else None)
    assert decoder_for(uid.RLELossless) == (RLE if rle_package_available() else PYDICOM)  # pydicom's own RLE
    assert decoder_for(uid.JPEG2000Lossless) == (PYDICOM if pydicom_can_decode(uid.JPEG2000Lossless) else None)
    assert decoder_for(uid.MPEG2MPML) is None  # video: no decoder, quarantined as unsupported
    supported = supported_transfer_syntaxes()
    assert uid.MPEG2MPML not in supported and all(decoder_for(ts) == name for ts, name in supported.items())


def test_an_unavailable_plugin_is_skipped_for_the_next_in_order():
    no_rle = tuple(replace(p, available=lambda _s: False) if p.name == RLE else p for p in DECODERS)
    assert plugin_for(uid.RLELossless, no_rle).name == PYDICOM
    assert plugin_for(uid.ExplicitVRLittleEndian, no_rle).name == NATIVE
    nothing = tuple(replace(p, available=lambda _s: False) for p in DECODERS)
    assert plugin_for(uid.ExplicitVRLittleEndian, nothing) is None


@pytest.mark.skipif(not rle_package_available(), reason="the rle package is not installed")
def test_the_rle_plugin_and_its_pydicom_fallback_decode_the_same_pixels():
    ds = pydicom.dcmread(DATA / "SC_rgb_rle_2frame.dcm")
    layout = pixel_layout(ds, "SC_rgb_rle_2frame")
    shape = (layout.frames, layout.rows, layout.columns, 3)
    by_rle, by_pydicom = np.empty(shape, np.uint8), np.empty(shape, np.uint8)
    streams = encapsulated_frames(ds, layout, [0, 1], "rle")
    plugin_named(RLE).decode(ds, layout, [0, 1], by_rle, scale=1, name="rle", streams=streams)
    plugin_named(PYDICOM).decode(ds, layout, [0, 1], by_pydicom, scale=1, name="pydicom", streams={})
    np.testing.assert_array_equal(by_rle, by_pydicom)
    np.testing.assert_array_equal(decode_frames(ds), by_rle)
    assert by_rle.any()
