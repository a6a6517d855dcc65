"""The applicant's photo: a JPEG or PNG of at most 2 MiB and 4,096 pixels a side, normalised
to a small JPEG. Its size is read from the header before any pixel is decoded, so that a
small file that unpacks to a huge image (a decompression bomb) is refused unopened; the
decoding is CPU work for a worker thread, never for the event loop."""

import base64
import binascii
import io

from PIL import Image, UnidentifiedImageError

from hc_common.errors import Unprocessable

MAX_PHOTO_BYTES = 2 * 1024 * 1024
MAX_PHOTO_SIDE = 4096
# Pillow's own guard as well: it warns past this many pixels and refuses past twice as many,
# whoever opens an image in this process.
Image.MAX_IMAGE_PIXELS = MAX_PHOTO_SIDE * MAX_PHOTO_SIDE
# What is kept: enough for the printed card's photo.
STORED_SIZE = (600, 800)


def invalid_photo(detail: str, detail_en: str) -> Unprocessable:
    return Unprocessable("invalid_photo", detail=detail, detail_en=detail_en)


def decode_photo(photo: str) -> tuple[bytes, str]:
    """The photo as normalised JPEG bytes, or 422 `invalid_photo`. Blocking: call it in a
    worker thread."""
    undecodable = invalid_photo(
        "照片不是有效的 JPEG 或 PNG 图片", "The photo is not a decodable JPEG or PNG"
    )
    text = photo.partition(",")[2] if photo.startswith("data:") else photo
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise undecodable from None
    if not raw or len(raw) > MAX_PHOTO_BYTES:
        raise invalid_photo(
            "照片须为 2 MiB 以内的 JPEG 或 PNG", "The photo must be a JPEG or PNG of at most 2 MiB"
        )
    try:
        # Only the header is read here: the size is known before any pixel is decoded.
        with Image.open(io.BytesIO(raw), formats=["JPEG", "PNG"]) as image:
            width, height = image.size
            if width > MAX_PHOTO_SIDE or height > MAX_PHOTO_SIDE:
                raise invalid_photo(
                    f"照片的长和宽均不得超过 {MAX_PHOTO_SIDE} 像素",
                    f"The photo must be at most {MAX_PHOTO_SIDE} pixels on either side",
                )
            # A JPEG is decoded straight at a reduced scale where it can be.
            image.draft("RGB", STORED_SIZE)
            image.load()
            rgb = image.convert("RGB")
            rgb.thumbnail(STORED_SIZE)
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=85)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise undecodable from None
    return out.getvalue(), "image/jpeg"
