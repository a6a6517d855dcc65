"""The card printer: draws cards (and QR SVGs) in a few worker processes and QR PNGs in a
thread, off the event loop.

reportlab is pure Python: drawn in a thread, a card would hold the GIL for milliseconds at
a time against the event loop, and every other request of the process would wait behind it.
Worker processes (spawned, so that nothing of the server's threads and sockets is inherited)
each keep their own parsed font and caches (see `render`). A QR PNG is ~2 ms of C code
(zxing-cpp, Pillow): a worker's round trip would cost more than the drawing. The server
process keeps the QR images, which never change for a credential.
"""

import asyncio
import io
import logging
import multiprocessing
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from typing import TypeVar

from PIL import Image

from hc_common.heap import freeze_heap
from issuer.card.render import LAYOUTS, CardData, Layout, card_pdf, qr_png, qr_svg

log = logging.getLogger(__name__)
T = TypeVar("T")
# QR images kept in the server process: ~2 KB a PNG, ~10 KB an SVG.
KEPT_IMAGES = 4096


def warm_up() -> None:
    """A worker's start: the font parsed and the fixed wording's subsets built, by drawing
    a card of each layout (and a QR SVG), so that the first family's download does not pay
    for them (QR PNGs are drawn in the server process, which loads Pillow's PNG writer in
    CardPrinter.start). What that left
    (~70,000 objects, the parsed font most of them) is then frozen out of the garbage
    collector: it lives as long as the worker, and each full collection walked it, a pause of
    ~15 ms in the card that happened to trigger one."""
    photo = io.BytesIO()
    Image.new("RGB", (60, 80), (200, 200, 200)).save(photo, "JPEG")
    sample = CardData(
        qr="GXHC1:warm-up",
        masked_name="李*华",
        masked_id_number="450103********1234",
        last_valid_day=date(2000, 1, 1),
        photo=photo.getvalue(),
        version=1,
        issuing_authority="",
    )
    for layout in LAYOUTS:
        card_pdf(sample, layout)
    qr_svg(sample.qr)
    freeze_heap()


class _Kept:
    """A small LRU of rendered images, by QR text."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = size

    def get(self, key: str) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        self._items[key] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)


class CardPrinter:
    """`processes` worker processes (0: a thread of the server instead, for comparison)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: Executor | None = self._new_pool()
        self._png = _Kept(KEPT_IMAGES)
        self._svg = _Kept(KEPT_IMAGES)

    def _new_pool(self) -> ProcessPoolExecutor | None:
        if self.processes <= 0:
            return None
        return ProcessPoolExecutor(
            self.processes, mp_context=multiprocessing.get_context("spawn"), initializer=warm_up
        )

    def start(self) -> None:
        """Start the workers now (each warms up), without waiting for them, and load
        Pillow's PNG writer here (QR PNGs are drawn in this process): the first download
        then finds them ready."""
        qr_png("GXHC1:warm-up")
        if self._pool is not None:
            for _ in range(self.processes):
                self._pool.submit(int)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def _run(self, call: Callable[..., T], *args: object) -> T:
        if self.processes <= 0:
            return await asyncio.to_thread(call, *args)
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            if self._pool is None:
                self._pool = self._new_pool()
            try:
                return await loop.run_in_executor(self._pool, call, *args)
            except BrokenProcessPool:
                # A worker died (killed for memory, say): a new pool, and one more try.
                log.warning("card printer: worker pool broken, starting a new one")
                broken, self._pool = self._pool, None
                if broken is not None:
                    broken.shutdown(wait=False, cancel_futures=True)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def card_pdf(self, card: CardData, layout: Layout) -> bytes:
        return await self._run(card_pdf, card, layout)

    async def qr_png(self, text: str) -> bytes:
        """The QR code's PNG, drawn in a thread of the server: ~2 ms of C (zxing-cpp's
        encoder, Pillow's scaling and PNG writer), where a worker process's round trip cost
        the first download of a credential's QR 5-7 ms more on a loaded machine."""
        kept = self._png.get(text)
        if kept is None:
            kept = await asyncio.to_thread(qr_png, text)
            self._png.put(text, kept)
        return kept

    async def qr_svg(self, text: str) -> bytes:
        kept = self._svg.get(text)
        if kept is None:
            kept = await self._run(qr_svg, text)
            self._svg.put(text, kept)
        return kept
