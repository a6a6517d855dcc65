"""Card PDF throughput and p99 latency (the renderer behind `card.pdf`), against a baseline
measured in the same run: rendering the bare QR PNG of the same text."""

import io
import time
from collections.abc import Callable
from datetime import date

N = 60


def _measure(call: Callable[[], object], n: int) -> tuple[float, float]:
    """Renders a second and p99 latency in milliseconds over `n` sequential calls."""
    times = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    times.sort()
    return n / total, times[min(n - 1, int(n * 0.99))] * 1000


def main() -> None:
    from PIL import Image

    from issuer.card.render import CardData, card_pdf, qr_png

    photo = io.BytesIO()
    Image.new("RGB", (450, 600), (180, 120, 90)).save(photo, "JPEG")
    qr = "GXHC1:" + "x" * 294  # the longest text the contract allows
    card = CardData(
        qr=qr,
        masked_name="李*华",
        masked_id_number="450103********1234",
        last_valid_day=date(2027, 11, 27),
        photo=photo.getvalue(),
        version=1,
    )
    card_pdf(card)  # font registration outside the timing
    print("command: .venv/bin/python -m tests.bench issuer")
    base_rps, base_p99 = _measure(lambda: qr_png(qr), N)
    print(f"baseline qr.png: {base_rps:.1f}/s, p99 {base_p99:.1f} ms over {N} renders")
    for layout in ("card", "a4"):
        rps, p99 = _measure(lambda layout=layout: card_pdf(card, layout), N)
        print(
            f"card.pdf layout={layout}: {rps:.1f}/s, p99 {p99:.1f} ms over {N} renders; "
            f"throughput {rps / base_rps:.2f}x baseline, p99 {p99 / base_p99:.2f}x baseline"
        )


if __name__ == "__main__":
    main()
