"""A fake camera for Chromium: a printed card (the issuer's `card.pdf`) filmed head-on, as a
YUV4MPEG2 file for `--use-file-for-fake-video-capture` (Chromium loops it).

Y4M is a text header and raw frames: "FRAME\\n" then the I420 planes (Y at full size, U and
V at half size each way). Written with Pillow, no encoder needed."""

from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image

WIDTH, HEIGHT = 1280, 720


def render_card(pdf: bytes, width_px: int = 900) -> Image.Image:
    """The card's first page as an RGB image `width_px` wide (as printed and held up)."""
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[0]
        scale = width_px / page.get_width()
        return page.render(scale=scale).to_pil().convert("RGB")
    finally:
        document.close()


def frame_of(card: Image.Image) -> Image.Image:
    """The card on a grey table, centred in a camera frame."""
    frame = Image.new("RGB", (WIDTH, HEIGHT), (120, 120, 120))
    card = card.copy()
    card.thumbnail((WIDTH - 80, HEIGHT - 80))
    frame.paste(card, ((WIDTH - card.width) // 2, (HEIGHT - card.height) // 2))
    return frame


def write_y4m(path: Path, frame: Image.Image, frames: int = 5, fps: int = 10) -> Path:
    """`frames` copies of `frame` (RGB, even width and height) as a Y4M file."""
    y, cb, cr = frame.convert("YCbCr").split()
    # 4:2:0: each chroma sample is the mean of a 2x2 block.
    half = (frame.width // 2, frame.height // 2)
    planes = y.tobytes() + cb.resize(half, Image.Resampling.BOX).tobytes()
    planes += cr.resize(half, Image.Resampling.BOX).tobytes()
    header = f"YUV4MPEG2 W{frame.width} H{frame.height} F{fps}:1 Ip A1:1 C420jpeg\n"
    with path.open("wb") as out:
        out.write(header.encode())
        for _ in range(frames):
            out.write(b"FRAME\n")
            out.write(planes)
    return path


def card_video(pdf: bytes, directory: Path) -> tuple[Path, Path]:
    """The card's Y4M video and a PNG of its frame (what the camera sees), in `directory`."""
    frame = frame_of(render_card(pdf))
    png = directory / "camera-frame.png"
    frame.save(png)
    return write_y4m(directory / "card.y4m", frame), png
