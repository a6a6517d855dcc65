"""Rendering of the QR code and the card: pure functions of a credential's printable data.

The card is drawn with reportlab at true ID-1 size (85.6 x 54 mm); the QR code is drawn as
vector squares so that it stays sharp at any print resolution. The Chinese text is set in
WenQuanYi Micro Hei, a TrueType font kept next to this module (`fonts/`, with its licence and
origin) and embedded (subset) in every PDF, so no system font is assumed.
"""

import io
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources

import segno
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

CARD_WIDTH_MM = 85.6
CARD_HEIGHT_MM = 54.0
CARD_TITLE = "广西健康码凭证"
FONT_NAME = "WenQuanYiMicroHei"
FONT_FILE = resources.files("issuer.card").joinpath("fonts/wqy-microhei.ttf")
# Level M and no error-correction boost: the contract's promise is "version 13 or less at M".
QR_ERROR = "m"
MAX_QR_VERSION = 13


@dataclass(frozen=True, slots=True)
class CardData:
    qr: str
    masked_name: str
    masked_id_number: str
    last_valid_day: date
    photo: bytes
    version: int


@cache
def card_font() -> str:
    """Registers the card's Chinese font once per process and returns its name."""
    with resources.as_file(FONT_FILE) as font_file:
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(font_file)))
    return FONT_NAME


def make_qr(text: str) -> segno.QRCode:
    qr = segno.make_qr(text, error=QR_ERROR, boost_error=False)
    # A full QR code's version is a number (only Micro QR's are "M1".."M4"); 300 characters
    # fit in version 13, so a longer text is a bug.
    if not isinstance(qr.version, int) or qr.version > MAX_QR_VERSION:
        raise ValueError(f"QR text needs version {qr.version}")
    return qr


def qr_png(text: str, scale: int = 8) -> bytes:
    out = io.BytesIO()
    make_qr(text).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(text: str, scale: int = 8) -> bytes:
    out = io.BytesIO()
    make_qr(text).save(out, kind="svg", scale=scale, border=4, xmldecl=True, title=CARD_TITLE)
    return out.getvalue()


def _draw_qr(canvas: Canvas, text: str, x: float, y: float, size: float) -> None:
    """The QR code as black squares in a `size` square at (x, y), quiet zone included."""
    qr = make_qr(text)
    border = 4
    modules = qr.symbol_size(scale=1, border=border)[0]
    unit = size / modules
    canvas.setFillColorRGB(1, 1, 1)
    canvas.rect(x, y, size, size, stroke=0, fill=1)
    canvas.setFillColorRGB(0, 0, 0)
    path = canvas.beginPath()
    for row_index, row in enumerate(qr.matrix):
        top = y + size - (row_index + border + 1) * unit
        run_start = None
        for col_index, dark in enumerate([*row, 0]):
            if dark and run_start is None:
                run_start = col_index
            elif not dark and run_start is not None:
                path.rect(
                    x + (run_start + border) * unit, top, (col_index - run_start) * unit, unit
                )
                run_start = None
    canvas.drawPath(path, stroke=0, fill=1)


def _draw_card(canvas: Canvas, card: CardData, x0: float, y0: float) -> None:
    """The card's front with its lower left corner at (x0, y0)."""
    font = card_font()
    width, height = CARD_WIDTH_MM * mm, CARD_HEIGHT_MM * mm
    canvas.saveState()
    canvas.setStrokeColorRGB(0.75, 0.75, 0.75)
    canvas.setLineWidth(0.3)
    canvas.roundRect(x0, y0, width, height, 3 * mm, stroke=1, fill=0)
    # Title band.
    canvas.setFillColorRGB(0.0, 0.45, 0.25)
    canvas.setFont(font, 10)
    canvas.drawString(x0 + 4 * mm, y0 + height - 8 * mm, CARD_TITLE)
    # Photo, 3:4, on the left.
    photo_w, photo_h = 17 * mm, 22.6 * mm
    canvas.drawImage(
        ImageReader(io.BytesIO(card.photo)),
        x0 + 4 * mm,
        y0 + 20 * mm,
        photo_w,
        photo_h,
        preserveAspectRatio=True,
        anchor="c",
    )
    canvas.setFillColorRGB(0, 0, 0)
    canvas.setFont(font, 9)
    canvas.drawString(x0 + 23 * mm, y0 + 36 * mm, card.masked_name)
    canvas.setFont(font, 5.5)
    canvas.drawString(x0 + 23 * mm, y0 + 31 * mm, f"第{card.version}版")
    canvas.setFont(font, 6.5)
    canvas.drawString(x0 + 4 * mm, y0 + 14 * mm, card.masked_id_number)
    canvas.drawString(x0 + 4 * mm, y0 + 9 * mm, f"有效期至 {card.last_valid_day:%Y-%m-%d}")
    canvas.setFont(font, 5)
    canvas.setFillColorRGB(0.35, 0.35, 0.35)
    canvas.drawString(x0 + 4 * mm, y0 + 4.5 * mm, "扫码查验实时健康状态")
    # The QR code on the right, as large as the card allows.
    qr_size = 42 * mm
    _draw_qr(canvas, card.qr, x0 + width - qr_size - 1.5 * mm, y0 + (height - qr_size) / 2, qr_size)
    canvas.restoreState()


def _cutting_marks(canvas: Canvas, x0: float, y0: float, width: float, height: float) -> None:
    """Crop marks at the four corners, 2 mm off the card's edge, 6 mm long."""
    gap, length = 2 * mm, 6 * mm
    canvas.saveState()
    canvas.setLineWidth(0.25)
    canvas.setStrokeColorRGB(0, 0, 0)
    for cx in (x0, x0 + width):
        for cy in (y0, y0 + height):
            sx = -1 if cx == x0 else 1
            sy = -1 if cy == y0 else 1
            canvas.line(cx + sx * gap, cy, cx + sx * (gap + length), cy)
            canvas.line(cx, cy + sy * gap, cx, cy + sy * (gap + length))
    canvas.restoreState()


def card_pdf(card: CardData, layout: str = "card") -> bytes:
    """`card`: one page of ID-1 size. `a4`: an A4 page with the card at true size near the
    top, centred, with cutting marks and a line of instructions."""
    out = io.BytesIO()
    width, height = CARD_WIDTH_MM * mm, CARD_HEIGHT_MM * mm
    if layout == "a4":
        page_w, page_h = A4
        canvas = Canvas(out, pagesize=A4, pageCompression=1)
        x0, y0 = (page_w - width) / 2, page_h - 40 * mm - height
        _draw_card(canvas, card, x0, y0)
        _cutting_marks(canvas, x0, y0, width, height)
        canvas.setFont(card_font(), 9)
        canvas.drawCentredString(
            page_w / 2, y0 - 16 * mm, "请按 100% 比例打印（不缩放），沿裁切线剪下，建议塑封。"
        )
    else:
        canvas = Canvas(out, pagesize=(width, height), pageCompression=1)
        _draw_card(canvas, card, 0, 0)
    canvas.setTitle(CARD_TITLE)
    canvas.showPage()
    canvas.save()
    return out.getvalue()
