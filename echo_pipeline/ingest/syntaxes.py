"""Which transfer syntaxes and SOP classes ingestion accepts, and what is installed to decode them.

The allow-list is computed from what is installed, so a file is only ingested when this environment can
decode it: native syntaxes and JPEG baseline always, RLE through pylibjpeg-rle (or pydicom's own RLE decoder),
and every other compressed syntax only when pydicom reports an available plugin for it (pylibjpeg-libjpeg
for JPEG lossless and JPEG-LS, Pillow with OpenJPEG for JPEG 2000). Video syntaxes (MPEG-2, H.264, HEVC)
have no pydicom decoder and are quarantined as unsupported. Which decoder handles each syntax, in what
priority: the plugins of decoders.py.
"""

from __future__ import annotations

from pydicom import uid
from pydicom.pixels import get_decoder

NATIVE = "native"  # numpy slicing of the requested frames
CV2_JPEG = "cv2-jpeg"  # libjpeg-turbo through cv2.imdecode, frame bytes from pydicom's encapsulation helpers
RLE = "pylibjpeg-rle"  # the rle package's Rust decoder, called per frame
PYDICOM = "pydicom"  # pydicom's decoder with its best available plugin
BIG_ENDIAN = str(uid.ExplicitVRBigEndian)

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


def pydicom_can_decode(transfer_syntax: str) -> bool:
    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except NotImplementedError:  # pydicom has no decoder interface at all for this syntax
        return False


def rle_package_available() -> bool:
    try:
        import rle.utils  # noqa: F401
    except ImportError:
        return False
    return True


def is_image_sop_class(sop_class_uid: str) -> bool:
    """True for the standard's image storage classes (US, US multi-frame, secondary capture, CT, MR, ...).

    The rule is the standard's own naming: every class named "... Image Storage ..." holds pixel data meant
    to be viewed as images. SR, presentation states, waveforms, RT plans/doses, segmentations, raw data,
    encapsulated documents and private classes are not on the list.
    """
    return "Image Storage" in uid.UID(sop_class_uid).name
