"""The printed card as a person sees it: both layouts rendered to PNG (kept under
.run/card-artifacts/ to look at), page sizes, the words on them, the QR decoded from the
picture with its quiet zone, the hint's size and darkness, the file names; the QR images'
caching, and the same symbol in the PNG, the SVG and the card; the printer surviving a dead
worker."""

import ctypes
import io
import os
import random
import re
import signal
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from PIL import Image

from hc_common.clock import CST
from hc_common.testing import make_id_number
from issuer.card.printer import CardPrinter
from issuer.card.render import (
    CARD_TITLE,
    LAYOUTS,
    MAX_QR_VERSION,
    QR_BORDER,
    SCAN_HINT,
    CardData,
    card_pdf,
    qr_modules,
    qr_png,
    qr_svg,
)

from .conftest import Issuer

ARTIFACTS = Path(__file__).resolve().parents[3] / ".run" / "card-artifacts"
NAME = "李秀华"
AUTHORITY = "广西壮族自治区卫生健康委员会"
DPI = 300
# The hint is meant for elderly holders: at least 9 pt, the size of the name on a resident
# identity card (a CJK character of 9 pt is about 3.2 mm), and dark (no channel over 80/255).
MIN_HINT_POINTS = 9.0
MAX_INK = 80


def elder() -> str:
    return make_id_number(date(1930, 1, 1) + timedelta(days=random.randrange(10_000)))


class Page:
    """One rendered PDF page: its size, its text, and its picture at 300 dpi."""

    def __init__(self, pdf: bytes, artifact: str) -> None:
        self.document = pdfium.PdfDocument(pdf)
        assert len(self.document) == 1
        self.page = self.document[0]
        width, height = self.page.get_size()
        self.size_mm = (round(width * 25.4 / 72, 1), round(height * 25.4 / 72, 1))
        self.textpage = self.page.get_textpage()
        self.text = self.textpage.get_text_range()
        self.image = self.page.render(scale=DPI / 72).to_pil().convert("L")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.image.save(ARTIFACTS / artifact)

    def qr(self) -> tuple[str, float, int]:
        """The one QR code a gate finds on the picture, its width in mm and its version;
        asserts its level (M) and that its quiet zone (4 modules) is white."""
        found = zxingcpp.read_barcodes(self.image, formats=zxingcpp.BarcodeFormat.QRCode)
        assert len(found) == 1, [(f.format, f.text) for f in found]
        code = found[0]
        corners = [code.position.top_left, code.position.bottom_right]
        left, top = corners[0].x, corners[0].y
        right, bottom = corners[1].x, corners[1].y
        assert code.ec_level == "M"
        version = int(code.extra["Version"])
        modules = 17 + 4 * version
        module = (right - left) / modules
        quiet = self.image.crop(
            (
                int(left - 3.5 * module),
                int(top - 3.5 * module),
                int(right + 3.5 * module),
                int(bottom + 3.5 * module),
            )
        )
        # The corners zxing gives are the symbol's outer corners: blank the symbol out (and a
        # pixel more for the rounding), the ring of 3.5 modules left must be white.
        inner = (int(module * 3.5) - 1, int(module * 3.5) - 1)
        quiet.paste(255, (*inner, quiet.width - inner[0], quiet.height - inner[1]))
        assert quiet.getextrema()[0] > 200, "the quiet zone is not white"
        return code.text, (right - left) / DPI * 25.4, version

    def chars_of(self, wanted: str) -> list[int]:
        start = self.text.find(wanted)
        assert start >= 0, wanted
        return list(range(start, start + len(wanted)))

    def font_size(self, index: int) -> float:
        return float(pdfium_c.FPDFText_GetFontSize(self.textpage.raw, index))

    def fill_colour(self, index: int) -> tuple[int, int, int]:
        r, g, b, a = (ctypes.c_uint() for _ in range(4))
        assert pdfium_c.FPDFText_GetFillColor(
            self.textpage.raw,
            index,
            ctypes.byref(r),
            ctypes.byref(g),
            ctypes.byref(b),
            ctypes.byref(a),
        )
        return r.value, g.value, b.value


def file_name(response: httpx.Response) -> tuple[str, str]:
    """(filename, filename*) of the Content-Disposition."""
    parts = dict(
        part.strip().split("=", 1)
        for part in response.headers["content-disposition"].split(";")[1:]
    )
    fallback = parts["filename"].strip('"')
    assert fallback.isascii()
    utf8 = parts["filename*"]
    assert utf8.startswith("UTF-8''")
    return fallback, unquote(utf8.removeprefix("UTF-8''"))


async def test_both_layouts_show_what_the_holder_and_the_gate_need(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    id_number = elder()
    body = (await issuer.apply(user, NAME, id_number)).json()
    base = f"/v1/family/credentials/{body['credential_id']}/card.pdf"
    last_day = datetime.fromisoformat(body["expires_at"]).astimezone(CST).date()
    pages = {}
    for layout in LAYOUTS:
        response = await issuer.client.get(base, headers=user, params={"layout": layout})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        page = pages[layout] = Page(response.content, f"card-v1-{layout}.png")
        for wanted in (
            "广西健康码凭证",
            AUTHORITY,
            "李*华",
            body["holder"]["masked_id_number"],
            f"{last_day:%Y-%m-%d}",
            SCAN_HINT,
        ):
            assert wanted in page.text, (layout, wanted)
        # Nothing whole about the person, and no version on a first card.
        assert id_number not in page.text and NAME not in page.text
        assert "补办 1" not in page.text and "第1版" not in page.text
        for index in page.chars_of(SCAN_HINT):
            assert page.font_size(index) >= MIN_HINT_POINTS
            assert max(page.fill_colour(index)) <= MAX_INK

        fallback, name = file_name(response)
        assert name == f"健康码凭证-李＊华-{'卡片' if layout == 'card' else 'A4'}.pdf"
        assert fallback == f"credential-{body['credential_id']}-{layout}.pdf"

    card, a4 = pages["card"], pages["a4"]
    assert card.size_mm == (85.6, 54.0)
    assert a4.size_mm == (210.0, 297.0)
    card_qr, card_qr_mm, card_version = card.qr()
    a4_qr, a4_qr_mm, a4_version = a4.qr()
    assert card_qr == a4_qr == body["qr"]
    assert card_version == a4_version <= 13
    # Large on the card (40 mm and more), and the same on the A4 page: the card at true size.
    assert card_qr_mm > 36 and abs(card_qr_mm - a4_qr_mm) < 0.3
    # The A4 page's instructions, in large type.
    a4_text = " ".join(a4.text.split())
    for wanted in (
        "实际大小",
        "100%",
        "适合页面",
        "5 厘米",
        "塑封",
        "补办",
        "旧卡立即失效",
        "申诉",
    ):
        assert wanted in a4_text.replace("\u00a0", " "), wanted
    for index in a4.chars_of("旧卡立即失效"):
        assert a4.font_size(index) >= 12


async def test_a_reissued_card_says_补办_2(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    first = (await issuer.apply(user, "王芳", elder())).json()
    reissued = await issuer.client.post(
        f"/v1/family/credentials/{first['credential_id']}/reissue", headers=user
    )
    assert reissued.status_code == 201
    second = reissued.json()
    assert second["version"] == 2
    base = f"/v1/family/credentials/{second['credential_id']}/card.pdf"
    for layout in LAYOUTS:
        response = await issuer.client.get(base, headers=user, params={"layout": layout})
        page = Page(response.content, f"card-v2-{layout}.png")
        assert "补办 2" in page.text
        assert page.qr()[0] == second["qr"]
        assert file_name(response)[1] == (
            f"健康码凭证-王＊-补办2-{'卡片' if layout == 'card' else 'A4'}.pdf"
        )


async def test_qr_images_are_cached_by_the_browser_and_revalidated(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    body = (await issuer.apply(user, NAME, elder())).json()
    base = f"/v1/family/credentials/{body['credential_id']}"
    for path, media in (("/qr.png", "image/png"), ("/qr.svg", "image/svg+xml")):
        first = await issuer.client.get(base + path, headers=user)
        assert first.status_code == 200 and first.headers["content-type"].startswith(media)
        assert first.headers["cache-control"].startswith("private")
        etag = first.headers["etag"]
        again = await issuer.client.get(base + path, headers={**user, "If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        other = await issuer.client.get(base + path, headers={**user, "If-None-Match": '"x"'})
        assert other.status_code == 200 and other.content == first.content
    png = Image.open(io.BytesIO((await issuer.client.get(base + "/qr.png", headers=user)).content))
    found = zxingcpp.read_barcodes(png, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [f.text for f in found] == [body["qr"]]
    # Still only for the owner: another user's If-None-Match does not learn anything.
    stranger = await issuer.sign_in()
    hidden = await issuer.client.get(base + "/qr.png", headers={**stranger, "If-None-Match": "*"})
    assert hidden.status_code == 404


def _jpeg() -> bytes:
    photo = io.BytesIO()
    Image.new("RGB", (60, 80), (120, 120, 120)).save(photo, "JPEG")
    return photo.getvalue()


def test_the_png_the_svg_and_the_card_show_one_symbol() -> None:
    """The longest text the contract allows: version 13 or less at M, and the PNG, the SVG
    (its path drawn back module by module) and the card (decoded at 300 dpi) the same
    symbol: the same modules, version and mask."""
    text = "GXHC1:" + "".join(random.choice("abcdefABCDEF0123456789-_.") for _ in range(294))
    png = Image.open(io.BytesIO(qr_png(text))).convert("L")
    (from_png,) = zxingcpp.read_barcodes(png, formats=zxingcpp.BarcodeFormat.QRCode)
    assert from_png.text == text and from_png.ec_level == "M"
    assert int(from_png.extra["Version"]) <= MAX_QR_VERSION
    n = qr_modules(text)[0]
    side = n + 2 * QR_BORDER
    assert png.size == (side * 8, side * 8)

    svg = qr_svg(text).decode()
    assert svg.startswith('<?xml version="1.0" encoding="utf-8"?>')
    assert f"<title>{CARD_TITLE}</title>" in svg and f'viewBox="0 0 {side} {side}"' in svg
    drawn = Image.new("L", (side, side), 255)
    for x, y, w in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\d+z", svg):
        drawn.paste(0, (int(x), int(y), int(x) + int(w), int(y) + 1))
    assert drawn.tobytes() == png.resize((side, side), Image.Resampling.NEAREST).tobytes()

    printed = Page(card_pdf(a_card(text), "card"), "card-longest-qr.png")
    (from_card,) = zxingcpp.read_barcodes(printed.image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert from_card.text == text
    for key in ("Version", "DataMask", "ECLevel"):
        assert from_card.extra[key] == from_png.extra[key], key


def a_card(qr: str) -> CardData:
    """A card of a holder with a real photo, for the QR text `qr`."""
    return CardData(
        qr=qr,
        masked_name="李*华",
        masked_id_number="450103********1234",
        last_valid_day=date(2027, 1, 1),
        photo=_jpeg(),
        version=1,
        issuing_authority=AUTHORITY,
    )


def test_a_text_beyond_version_13_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        qr_modules("GXHC1:" + "x" * 400)
    with pytest.raises(ValueError):
        qr_modules("GXHC1:" + "x" * 5000)


async def test_the_printer_replaces_a_worker_that_died() -> None:
    card = a_card("GXHC1:printer-test")
    printer = CardPrinter(1)
    try:
        assert (await printer.card_pdf(card, "card")).startswith(b"%PDF")
        pool = printer._pool
        for pid in list(pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        assert (await printer.card_pdf(card, "a4")).startswith(b"%PDF")
        assert printer._pool is not pool
    finally:
        printer.close()
