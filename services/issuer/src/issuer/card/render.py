"""Rendering of the QR code and the card: pure functions of a credential's printable data.

The card is drawn with reportlab at true ID-1 size (85.6 x 54 mm); the QR code is drawn as
vector squares so that it stays sharp at any print resolution. The Chinese text is set in
WenQuanYi Micro Hei, a TrueType font kept next to this module (`fonts/`, with its licence and
origin) and embedded (subset) in every PDF, so no system font is assumed.

Speed (see `tests/bench/bench_issuer.py`): what does not change between cards is computed
once per process and kept: the parsed font, the font subset of the fixed wording (drawn in a
font of its own, so that its subset is the same in every PDF), the wrapped A4 instructions,
and, per QR text (a credential's never changes), the QR code's modules, its PDF drawing
operators, its PNG and its SVG. The QR code is encoded by zxing-cpp, in C++ (~1 ms; segno, in
pure Python, spent 12-20 ms choosing the mask, which a fresh credential's first download
waited for). The QR is drawn as raw PDF path operators in module units (integers), not as one
reportlab rectangle per run of modules, whose number formatting was most of a card's time.
"""

import io
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from importlib import resources
from typing import Literal
from xml.sax.saxutils import escape as xml_escape

import zxingcpp
from PIL import Image
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfdoc, pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

Layout = Literal["card", "a4"]
LAYOUTS: tuple[Layout, ...] = ("card", "a4")

CARD_WIDTH_MM = 85.6
CARD_HEIGHT_MM = 54.0
CARD_TITLE = "广西健康码凭证"
SCAN_HINT = "扫码查验实时健康状态"
# The smallest type on the card that a holder is meant to read (the hint); 9 pt CJK is about
# 3.2 mm a character, the size of the name on a resident identity card.
HINT_POINTS = 10.0
# Two registrations of one font file: the fixed wording in one (its subset, built once, is
# the same in every PDF), a card's own words (name, numbers, dates) in the other.
FIXED_FONT = "HCCardFixed"
VARIABLE_FONT = "HCCardVariable"
FONT_FILE = resources.files("issuer.card").joinpath("fonts/wqy-microhei.ttf")
# Level M, as asked (zxing-cpp does not raise the level where the version has room to spare):
# the contract's promise is "version 13 or less at M".
QR_ERROR = "M"
MAX_QR_VERSION = 13
QR_BORDER = 4  # modules of quiet zone on each side
QR_PNG_SCALE = 8  # pixels a module

# Colours: near-black ink, one accent (a dark navy: official, and not a health-code colour,
# so that no one reads the card's band as the holder's status).
INK = (0.08, 0.08, 0.1)
ACCENT = (0.09, 0.2, 0.4)
SOFT = (0.32, 0.32, 0.36)
WHITE = (1.0, 1.0, 1.0)

# --- reportlab, made to keep what does not change ------------------------------------------
# These settings and wrappers are process-wide; reportlab draws nothing else in the issuer.

# reportlab's pure-Python ASCII85 encoding of the streams cost a card ~1 ms; the PDF is
# binary (deflate) either way.
rl_config.useA85 = 0

_deflate = pdfdoc.PDFZCompress.encode


@lru_cache(maxsize=32)
def _deflate_kept(data: bytes) -> bytes:
    return zlib.compress(data)


def _deflate_font_programs(text: str | bytes) -> bytes:
    """Deflate, kept for the large binary streams: the font subsets, the same objects in
    every PDF (see `_CachedSubsetFont`), whose compression was a third of a card's time."""
    if isinstance(text, bytes) and len(text) >= 4096:
        return _deflate_kept(text)
    return bytes(_deflate(text))


pdfdoc.PDFZCompress.encode = _deflate_font_programs
_to_unicode_cmap = ttfonts.makeToUnicodeCMap


@lru_cache(maxsize=64)
def _to_unicode_cmap_kept(fontname: str, subset: tuple[int, ...]) -> str:
    return str(_to_unicode_cmap(fontname, list(subset)))


ttfonts.makeToUnicodeCMap = lambda fontname, subset: _to_unicode_cmap_kept(fontname, tuple(subset))


@dataclass(frozen=True, slots=True)
class CardData:
    qr: str
    masked_name: str
    masked_id_number: str
    last_valid_day: date
    photo: bytes
    version: int
    issuing_authority: str


def version_label(version: int) -> str:
    """What the card says about its version: nothing on the first card, 补办 n on the n-th
    (a reissue), whose predecessors no longer scan."""
    return f"补办 {version}" if version >= 2 else ""


# --- fonts ---------------------------------------------------------------------------------


class _CachedSubsetFont(TTFont):
    """A TTFont whose subsets are built once per distinct set of characters: the fixed
    wording's subset is the same in every PDF, and the font program is most of its cost."""

    def __init__(self, name: str, filename: str) -> None:
        super().__init__(name, filename)
        make_subset: Callable[[list[int]], bytes] = self.face.makeSubset
        cached = lru_cache(maxsize=64)(lambda codes: make_subset(list(codes)))
        self.face.makeSubset = lambda subset: cached(tuple(subset))


@cache
def card_fonts() -> tuple[str, str]:
    """Registers the card's two fonts once per process; returns (fixed, variable)."""
    with resources.as_file(FONT_FILE) as font_file:
        for name in (FIXED_FONT, VARIABLE_FONT):
            pdfmetrics.registerFont(_CachedSubsetFont(name, str(font_file)))
    return FIXED_FONT, VARIABLE_FONT


def card_font() -> str:
    """The fixed wording's font (registered on first use)."""
    return card_fonts()[0]


def text_width(text: str, size: float) -> float:
    return float(pdfmetrics.stringWidth(text, card_font(), size))


def fitted_size(text: str, size: float, width: float, smallest: float) -> float:
    """`size`, or less (down to `smallest`) so that `text` fits in `width`."""
    natural = text_width(text, size)
    return size if natural <= width else max(smallest, size * width / natural)


# --- the QR code ---------------------------------------------------------------------------


def _encode(text: str) -> tuple[int, bytes]:
    """`text`'s QR code at level M, in the smallest version that holds it: its width in
    modules and its modules row by row, one byte a module (0 dark, 255 light), without quiet
    zone. zxing-cpp encodes (in C++, ~1 ms for a credential's text, the mask chosen too)."""
    try:
        barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=QR_ERROR)
    except ValueError as error:  # more than version 40 holds
        raise ValueError(f"QR text does not fit a QR code: {error}") from None
    image = barcode.to_image(scale=1, add_quiet_zones=False)
    n = int(image.shape[1])
    modules = bytes(memoryview(image))  # type: ignore[arg-type]  # a buffer; the stub says not
    if image.shape[0] != n or len(modules) != n * n or barcode.ec_level != QR_ERROR:
        raise RuntimeError(f"unexpected QR code: {image.shape}, level {barcode.ec_level}")
    return n, modules


def qr_version(n: int) -> int:
    """The version of a QR code `n` modules wide (version 1: 21, then 4 more a version)."""
    return (n - 17) // 4


@lru_cache(maxsize=1024)
def qr_modules(text: str) -> tuple[int, bytes]:
    """`text`'s QR code (see `_encode`), kept per text: a credential's QR text never changes,
    and the PNG, the SVG and every card of it draw the same symbol. 300 characters fit in
    version 13 at M, so a text that needs more is a bug: ValueError."""
    n, modules = _encode(text)
    if qr_version(n) > MAX_QR_VERSION:
        raise ValueError(f"QR text needs version {qr_version(n)}")
    return n, modules


_DARK_RUN = re.compile(b"\x00+")


@lru_cache(maxsize=1024)
def _qr_runs(text: str) -> tuple[tuple[tuple[int, int, int], ...], int]:
    """The horizontal runs of dark modules of `text`'s QR code, (row from the top, first
    column, length), and the symbol's width in modules: what the card's PDF and the SVG draw,
    one rectangle a run."""
    n, modules = qr_modules(text)
    runs = tuple(
        (row, run.start() - row * n, run.end() - run.start())
        for row in range(n)
        for run in _DARK_RUN.finditer(modules, row * n, (row + 1) * n)
    )
    return runs, n


def qr_png(text: str) -> bytes:
    """The QR code as a 1-bit PNG, 8 pixels a module, 4 modules of quiet zone."""
    n, modules = qr_modules(text)
    side = n + 2 * QR_BORDER
    # The modules are a greyscale image already (0 dark, 255 light); framed, made 1-bit (no
    # dithering: there is no grey, and Pillow's dithering cost 1.3 ms) and scaled without
    # smoothing by Pillow, in C.
    framed = Image.new("L", (side, side), 255)
    framed.paste(Image.frombytes("L", (n, n), modules), (QR_BORDER, QR_BORDER))
    bits = framed.convert("1", dither=Image.Dither.NONE)
    big = bits.resize((side * QR_PNG_SCALE, side * QR_PNG_SCALE), Image.Resampling.NEAREST)
    out = io.BytesIO()
    big.save(out, "PNG")
    return out.getvalue()


def qr_svg(text: str) -> bytes:
    """The QR code as SVG, the same symbol as the PNG's: 8 px a module, 4 modules of quiet
    zone on white, the dark modules one path in module units, the card's title as its
    title."""
    runs, n = _qr_runs(text)
    side = n + 2 * QR_BORDER
    path = "".join(f"M{x + QR_BORDER} {y + QR_BORDER}h{w}v1h-{w}z" for y, x, w in runs)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side * QR_PNG_SCALE}" '
        f'height="{side * QR_PNG_SCALE}" viewBox="0 0 {side} {side}" '
        f'shape-rendering="crispEdges"><title>{xml_escape(CARD_TITLE)}</title>'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>\n'
    ).encode()


@lru_cache(maxsize=1024)
def _qr_operators(text: str) -> tuple[str, int]:
    """PDF path operators that fill the dark modules of `text`'s QR code in module units
    (origin at the symbol's lower left, no quiet zone), one rectangle per horizontal run,
    and the symbol's width in modules."""
    runs, n = _qr_runs(text)
    return "\n".join(f"{x} {n - 1 - y} {w} 1 re" for y, x, w in runs), n


def _draw_qr(canvas: Canvas, text: str, x: float, y: float, size: float) -> None:
    """The QR code, quiet zone included, as a white square of side `size` at (x, y) with the
    dark modules filled in black."""
    operators, n = _qr_operators(text)
    unit = size / (n + 2 * QR_BORDER)
    canvas.saveState()
    canvas.setFillColorRGB(*WHITE)
    canvas.rect(x, y, size, size, stroke=0, fill=1)
    origin_x, origin_y = x + QR_BORDER * unit, y + QR_BORDER * unit
    canvas.addLiteral(
        f"q 0 0 0 rg {unit:.5f} 0 0 {unit:.5f} {origin_x:.4f} {origin_y:.4f} cm\n{operators}\nf Q"
    )
    canvas.restoreState()


# --- text ----------------------------------------------------------------------------------


def _text(
    canvas: Canvas,
    x: float,
    y: float,
    text: str,
    size: float,
    *,
    colour: tuple[float, float, float] = INK,
    bold: bool = False,
    align: Literal["left", "centre", "right"] = "left",
    variable: bool = False,
) -> None:
    """One line of text. `bold` strokes the outline as well (the font has no bold face);
    `variable` sets it in the font of a card's own words."""
    fixed, var = card_fonts()
    font = var if variable else fixed
    if align != "left":
        width = float(pdfmetrics.stringWidth(text, font, size))
        x -= width if align == "right" else width / 2
    # Colours, line width and render mode are graphics state: kept to this line of text.
    canvas.saveState()
    t = canvas.beginText(x, y)
    t.setFont(font, size)
    t.setFillColorRGB(*colour)
    if bold:
        t.setStrokeColorRGB(*colour)
        t.setTextRenderMode(2)
        canvas.setLineWidth(size * 0.035)
    t.textOut(text)
    canvas.drawText(t)
    canvas.restoreState()


NO_LINE_START = set("，。、；：！？）」』”’%")
NO_LINE_END = set("（「『“‘")
NBSP = "\u00a0"


@lru_cache(maxsize=64)
def wrap(text: str, size: float, width: float) -> tuple[str, ...]:
    """`text` broken into lines no wider than `width` at `size` points: anywhere between
    Chinese characters, but never before a closing punctuation mark, and between words of
    Latin text."""
    lines: list[str] = []
    line = ""
    for token in _tokens(text):
        candidate = line + token
        if line and text_width(candidate, size) > width and token[0] not in NO_LINE_START:
            # An opening mark goes down to the next line with what it opens.
            carried = ""
            while line and line[-1] in NO_LINE_END:
                carried, line = line[-1] + carried, line[:-1]
            lines.append(line.rstrip())
            line = carried + token.lstrip()
        else:
            line = candidate
    if line:
        lines.append(line)
    return tuple(lines)


def _tokens(text: str) -> Iterator[str]:
    """Chinese characters one by one; runs of Latin letters and digits kept together, and so
    is what a no-break space (U+00A0) joins, up to the next punctuation mark or space
    ("5\u00a0厘米" stays on one line)."""
    word = ""
    glued = False
    for char in text:
        if char == NBSP:
            word += char
            glued = True
            continue
        if glued and not (char in NO_LINE_START or char in NO_LINE_END or char.isspace()):
            word += char
            continue
        glued = False
        if char.isascii() and not char.isspace():
            word += char
            continue
        if word:
            yield word
            word = ""
        yield char
    if word:
        yield word


# --- the card ------------------------------------------------------------------------------


class _Photo(ImageReader):
    """The stored photo (a JPEG, see `credential.photo`), embedded as it is. reportlab names
    an image by a digest of its decoded pixels; here the digest is of the JPEG's bytes, so
    that the photo is never decoded (a PNG, not expected, is still decoded and embedded)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self._data = data

    def getRGBData(self) -> bytes:  # reportlab's name
        if getattr(self._image, "format", None) == "JPEG":
            self._dataA = None
            return self._data
        return bytes(super().getRGBData())


def _draw_card(canvas: Canvas, card: CardData, x0: float, y0: float) -> None:
    """The card's front with its lower left corner at (x0, y0).

    A navy band with the title and the issuing authority; the photo with the masked name
    (and 补办 n on a reissue) beside it; the masked ID number and the last valid day; the
    scanning hint, large and dark; the QR code on the right, as large as the card allows.
    """
    width, height = CARD_WIDTH_MM * mm, CARD_HEIGHT_MM * mm
    band = 11.5 * mm
    canvas.saveState()
    path = canvas.beginPath()
    path.roundRect(x0, y0, width, height, 3 * mm)
    canvas.clipPath(path, stroke=0, fill=0)
    canvas.setFillColorRGB(*WHITE)
    canvas.rect(x0, y0, width, height, stroke=0, fill=1)
    canvas.setFillColorRGB(*ACCENT)
    canvas.rect(x0, y0 + height - band, width, band, stroke=0, fill=1)
    canvas.restoreState()
    canvas.saveState()
    canvas.setStrokeColorRGB(0.6, 0.6, 0.6)
    canvas.setLineWidth(0.3)
    canvas.roundRect(x0, y0, width, height, 3 * mm, stroke=1, fill=0)
    canvas.restoreState()

    left = x0 + 3.5 * mm
    top = y0 + height
    _text(canvas, left, top - 6 * mm, CARD_TITLE, 13, colour=WHITE, bold=True)
    authority_width = width - 7 * mm
    authority = f"{card.issuing_authority} 签发"
    _text(
        canvas,
        left,
        top - 10 * mm,
        authority,
        fitted_size(authority, 7, authority_width, 5),
        colour=WHITE,
    )

    # The QR code on the right, under the band: 41 mm with its quiet zone (a module of a
    # version 13 code is then 0.53 mm).
    qr_size = 41 * mm
    _draw_qr(canvas, card.qr, x0 + width - qr_size - 1 * mm, y0 + 1 * mm, qr_size)

    # The photo, 3:4, on the left under the band.
    photo_w, photo_h = 15 * mm, 20 * mm
    photo_top = top - band - 1.8 * mm
    canvas.drawImage(
        _Photo(card.photo),
        left,
        photo_top - photo_h,
        photo_w,
        photo_h,
        preserveAspectRatio=True,
        anchor="c",
    )
    column = left + photo_w + 2 * mm
    column_width = x0 + width - qr_size - 1 * mm - column
    name_size = fitted_size(card.masked_name, 13, column_width, 8)
    _text(canvas, column, photo_top - 5 * mm, card.masked_name, name_size, bold=True, variable=True)
    label = version_label(card.version)
    if label:
        size = 8
        label_w = float(pdfmetrics.stringWidth(label, card_fonts()[1], size)) + 2.4 * mm
        canvas.saveState()
        canvas.setStrokeColorRGB(*ACCENT)
        canvas.setLineWidth(0.6)
        canvas.roundRect(column, photo_top - 12.2 * mm, label_w, 4.6 * mm, 0.8 * mm)
        canvas.restoreState()
        _text(
            canvas,
            column + 1.2 * mm,
            photo_top - 11.1 * mm,
            label,
            size,
            colour=ACCENT,
            bold=True,
            variable=True,
        )

    # The ID number, the last valid day and the hint, under the photo.
    _text(canvas, left, y0 + 15.2 * mm, "身份证号", 6, colour=SOFT)
    _text(canvas, left + 9.5 * mm, y0 + 15.2 * mm, card.masked_id_number, 7.5, variable=True)
    _text(canvas, left, y0 + 10.4 * mm, "有效期至", 6, colour=SOFT)
    _text(
        canvas,
        left + 9.5 * mm,
        y0 + 10.4 * mm,
        f"{card.last_valid_day:%Y-%m-%d}",
        7.5,
        variable=True,
    )
    _text(canvas, left, y0 + 3.4 * mm, SCAN_HINT, HINT_POINTS, bold=True)


def _cutting_marks(canvas: Canvas, x0: float, y0: float, width: float, height: float) -> None:
    """Crop marks at the four corners, 2 mm off the card's edge, 6 mm long."""
    gap, length = 2 * mm, 6 * mm
    canvas.saveState()
    canvas.setLineWidth(0.3)
    canvas.setStrokeColorRGB(0, 0, 0)
    for cx in (x0, x0 + width):
        for cy in (y0, y0 + height):
            sx = -1 if cx == x0 else 1
            sy = -1 if cy == y0 else 1
            canvas.line(cx + sx * gap, cy, cx + sx * (gap + length), cy)
            canvas.line(cx, cy + sy * gap, cx, cy + sy * (gap + length))
    canvas.restoreState()


# --- the A4 page ---------------------------------------------------------------------------

A4_TITLE = "广西健康码凭证 · 打印页"
A4_MARGIN = 20 * mm
A4_BODY_POINTS = 14.0
A4_HEADING_POINTS = 16.0


def a4_instructions(authority: str) -> tuple[tuple[str, str], ...]:
    """The A4 page's instructions for the family: (heading, paragraph), in order."""
    return (
        (
            "一、打印",
            "用 A4 纸打印本页，打印设置选“实际大小”或“100%”，不要选“适合页面”“缩放”"
            "或“自动调整”。打印后用尺子量下面这条线，应正好 5\u00a0厘米；"
            "不是 5\u00a0厘米请重新打印。",
        ),
        (
            "二、剪下、塑封",
            "沿卡片四角的裁切线剪下（与身份证一样大）。建议塑封或装进卡套，防水防折。"
            "二维码不要折叠、涂写或遮挡。",
        ),
        (
            "三、使用",
            "进入场所时把卡片交给工作人员扫码，或对准闸机扫码。卡片上没有健康信息，"
            "健康状态以扫码时的实时查询为准，不必因状态变化重新打印。",
        ),
        (
            "四、丢失或损坏",
            "在小程序“家人凭证”中点“补办”，重新打印新卡。补办后旧卡立即失效、"
            "扫码不能通行；新卡上印有“补办”和次数。",
        ),
        (
            "五、有疑问或申诉",
            "对健康状态或凭证有异议，在小程序“申诉”中提交，"
            f"由{authority}处理，处理结果以短信通知。",
        ),
    )


A4_FOOTER_TOP = 23 * mm  # the lowest baseline of the instructions (the footer's rule: 18 mm)
A4_CHECK_LINE = 10 * mm  # the 5 cm line and its spacing


@lru_cache(maxsize=16)
def _body_points(instructions: tuple[tuple[str, str], ...], width: float, room: float) -> float:
    """The largest body size from A4_BODY_POINTS down to 12 pt at which the instructions
    fit in `room` points of height (from the first heading's baseline to the last line's)."""
    size = A4_BODY_POINTS
    while size > 12:
        lines = sum(len(wrap(paragraph, size, width)) for _, paragraph in instructions)
        height = (
            len(instructions) * (A4_HEADING_POINTS * 1.5 + 3 * mm)
            + lines * size * 1.55
            + A4_CHECK_LINE
            - size * 1.55
            - 3 * mm
        )
        if height <= room:
            break
        size -= 0.5
    return size


def _draw_a4(canvas: Canvas, card: CardData) -> None:
    page_w, page_h = A4
    width, height = CARD_WIDTH_MM * mm, CARD_HEIGHT_MM * mm
    text_width_pt = page_w - 2 * A4_MARGIN
    # Header: title, authority, a rule in the accent colour.
    _text(canvas, A4_MARGIN, page_h - 24 * mm, A4_TITLE, 20, colour=ACCENT, bold=True)
    _text(canvas, A4_MARGIN, page_h - 31 * mm, card.issuing_authority, 12, colour=INK)
    canvas.saveState()
    canvas.setStrokeColorRGB(*ACCENT)
    canvas.setLineWidth(1.2)
    canvas.line(A4_MARGIN, page_h - 35 * mm, page_w - A4_MARGIN, page_h - 35 * mm)
    canvas.restoreState()

    # The card at true size, centred, with cutting marks.
    x0, y0 = (page_w - width) / 2, page_h - 50 * mm - height
    _draw_card(canvas, card, x0, y0)
    _cutting_marks(canvas, x0, y0, width, height)
    _text(
        canvas,
        page_w / 2,
        y0 - 13 * mm,
        "沿四角裁切线剪下：卡片 85.6 × 54 毫米",
        11,
        colour=SOFT,
        align="centre",
    )

    # The instructions, in large type (smaller, down to 12 pt, only where a long authority
    # name would push them into the footer).
    y = y0 - 27 * mm
    instructions = a4_instructions(card.issuing_authority)
    body = _body_points(instructions, text_width_pt, y - A4_FOOTER_TOP)
    body_leading = body * 1.55
    for index, (heading, paragraph) in enumerate(instructions):
        _text(canvas, A4_MARGIN, y, heading, A4_HEADING_POINTS, colour=ACCENT, bold=True)
        y -= A4_HEADING_POINTS * 1.5
        for line in wrap(paragraph, body, text_width_pt):
            _text(canvas, A4_MARGIN, y, line, body)
            y -= body_leading
        if index == 0:
            # The 5 cm check line, with end ticks.
            y -= 2 * mm
            canvas.saveState()
            canvas.setStrokeColorRGB(*INK)
            canvas.setLineWidth(1.2)
            canvas.line(A4_MARGIN, y, A4_MARGIN + 50 * mm, y)
            for tick in (A4_MARGIN, A4_MARGIN + 50 * mm):
                canvas.line(tick, y - 2 * mm, tick, y + 2 * mm)
            canvas.restoreState()
            _text(canvas, A4_MARGIN + 53 * mm, y - 1.5 * mm, "5 厘米", body)
            y -= A4_CHECK_LINE - 2 * mm
        y -= 3 * mm

    # Footer.
    canvas.saveState()
    canvas.setStrokeColorRGB(0.7, 0.7, 0.7)
    canvas.setLineWidth(0.5)
    canvas.line(A4_MARGIN, 18 * mm, page_w - A4_MARGIN, 18 * mm)
    canvas.restoreState()
    _text(
        canvas,
        A4_MARGIN,
        12 * mm,
        f"签发机关：{card.issuing_authority}",
        10,
        colour=SOFT,
    )
    label = version_label(card.version)
    if label:
        _text(
            canvas,
            page_w - A4_MARGIN,
            12 * mm,
            label,
            10,
            colour=SOFT,
            align="right",
            variable=True,
        )


def card_pdf(card: CardData, layout: Layout = "card") -> bytes:
    """`card`: one page of ID-1 size. `a4`: an A4 page with the card at true size, cutting
    marks and the family's instructions (printing at 100 %, laminating, a lost card,
    appeals) in large type."""
    out = io.BytesIO()
    if layout == "a4":
        canvas = Canvas(out, pagesize=A4, pageCompression=1)
        _draw_a4(canvas, card)
    else:
        canvas = Canvas(out, pagesize=(CARD_WIDTH_MM * mm, CARD_HEIGHT_MM * mm), pageCompression=1)
        _draw_card(canvas, card, 0, 0)
    canvas.setTitle(CARD_TITLE)
    canvas.setAuthor(card.issuing_authority)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


# Characters that a file name cannot hold on some system (Windows forbids all of these).
_NOT_IN_FILE_NAMES = str.maketrans({c: "_" for c in '\\/:?"<>|'} | {"*": "＊"})


def card_file_name(card: CardData, layout: Layout) -> str:
    """The PDF's file name: 健康码凭证-李＊华[-补办2]-卡片.pdf / ...-A4.pdf. The masked name
    only (its star as a full-width ＊, which Windows allows in a file name), so that each
    family member's card, layout and reissue has a name of its own."""
    parts = ["健康码凭证", card.masked_name.translate(_NOT_IN_FILE_NAMES)]
    if card.version >= 2:
        parts.append(f"补办{card.version}")
    parts.append("卡片" if layout == "card" else "A4")
    return "-".join(parts) + ".pdf"
