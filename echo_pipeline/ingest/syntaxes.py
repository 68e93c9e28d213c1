"""Which transfer syntaxes and SOP classes ingestion accepts, and which decoder handles each syntax.

The allow-list is computed from what is installed, so a file is only ingested when this environment can
decode it: native syntaxes and JPEG baseline always, RLE through pylibjpeg-rle (or pydicom's own RLE decoder),
and every other compressed syntax only when pydicom reports an available plugin for it (pylibjpeg-libjpeg
for JPEG lossless and JPEG-LS, Pillow with OpenJPEG for JPEG 2000). Video syntaxes (MPEG-2, H.264, HEVC)
have no pydicom decoder and are quarantined as unsupported.
"""

from __future__ import annotations

from functools import lru_cache

from pydicom import uid
from pydicom.pixels import get_decoder

NATIVE = "native"  # numpy slicing of the requested frames
CV2_JPEG = "cv2-jpeg"  # libjpeg-turbo through cv2.imdecode, frame bytes from pydicom's encapsulation helpers
RLE = "pylibjpeg-rle"  # the rle package's Rust decoder, called per frame
PYDICOM = "pydicom"  # pydicom's decoder with its best available plugin

NATIVE_SYNTAXES = frozenset(
    {
        uid.ImplicitVRLittleEndian,
        uid.ExplicitVRLittleEndian,
        uid.DeflatedExplicitVRLittleEndian,  # pydicom inflates the whole data set while reading
        uid.ExplicitVRBigEndian,
    }
)
# JPEG Extended streams with 8-bit precision are ordinary baseline streams to libjpeg-turbo.
CV2_JPEG_SYNTAXES = frozenset({uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit})


def _pydicom_can_decode(transfer_syntax: str) -> bool:
    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except NotImplementedError:  # pydicom has no decoder interface at all for this syntax
        return False


def _rle_package_available() -> bool:
    try:
        import rle.utils  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=None)
def decoder_for(transfer_syntax: str) -> str | None:
    """The decode path used for ``transfer_syntax``, or None when nothing installed can decode it.

    JPEG files on the cv2 path still fall back to pydicom per file when their colour markers or precision
    need it (see decode.py), so that path also requires a pydicom JPEG plugin.
    """
    if transfer_syntax in NATIVE_SYNTAXES:
        return NATIVE
    if transfer_syntax in CV2_JPEG_SYNTAXES and _pydicom_can_decode(transfer_syntax):
        return CV2_JPEG
    if transfer_syntax == uid.RLELossless and _rle_package_available():
        return RLE
    if _pydicom_can_decode(transfer_syntax):
        return PYDICOM
    return None


def supported_transfer_syntaxes() -> dict[str, str]:
    """Transfer syntax UID → decode path, for every syntax pydicom knows that this environment decodes."""
    table = {str(ts): decoder_for(str(ts)) for ts in uid.AllTransferSyntaxes}
    return {ts: path for ts, path in table.items() if path is not None}


def is_image_sop_class(sop_class_uid: str) -> bool:
    """True for the standard's image storage classes (US, US multi-frame, secondary capture, CT, MR, ...).

    The rule is the standard's own naming: every class named "... Image Storage ..." holds pixel data meant
    to be viewed as images. SR, presentation states, waveforms, RT plans/doses, segmentations, raw data,
    encapsulated documents and private classes are not on the list.
    """
    return "Image Storage" in uid.UID(sop_class_uid).name
