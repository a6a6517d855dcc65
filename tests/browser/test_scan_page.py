"""The staff scanning page (`GET /scan/` on the verifier) as venue staff use it, in Chromium,
against the four real services: sign in with the SMS code, pick the venue, then scan a
printed card through the camera (a fake camera filming the issuer's `card.pdf`), and with a
handheld scanner (typed text + Enter). Also: each service's `/docs` renders with nothing
from outside 127.0.0.1, and the page's weight and timings (printed; the weight asserted).

Screenshots of every state go to `.run/browser-artifacts/<time>/` (printed)."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from hc_common.devstack import Stack
from hc_common.testing import make_id_number, make_phone, poll
from tests.browser.camera import card_video
from tests.browser.conftest import CHROMIUM
from tests.browser.report import say
from tests.conftest import Api, own_stack
from tests.journeys import AUTHORITY, apply_for, open_venue, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# The contract's page weight: every asset of the first load, cold cache.
MAX_FIRST_LOAD_BYTES = 300 * 1024
# How long a change may take to reach the verifier (the contract's 2 s, with room) plus a
# camera's repeat interval (the page sends the same card again after 3 s).
ANSWER_TIMEOUT_MS = 15_000
GREEN, RED, GREY = "rgb(21, 128, 61)", "rgb(185, 28, 28)", "rgb(107, 114, 128)"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


class System:
    """The stack, its API clients, and the staff member at their venue."""

    def __init__(self, stack: Stack, api: Api) -> None:
        self.stack, self.api = stack, api
        self.staff_phone = make_phone()
        self.staff = sign_in(api.issuer, self.staff_phone)
        self.venue_id = open_venue(api.venue_admin, self.staff, name="南宁东站")
        self.venue_without_scan = self._membership_without_reverse_scan()

    def _membership_without_reverse_scan(self) -> str:
        """A venue where the staff member is a sub-admin whose `reverse_scan` was taken away:
        the page must not offer it."""
        owner = sign_in(self.api.issuer, make_phone())
        venue_id = open_venue(self.api.venue_admin, owner, name="无权限场所")
        va = self.api.venue_admin
        sent = va.post(
            f"/v1/venues/{venue_id}/sub-admins/code",
            headers=owner,
            json={"phone": self.staff_phone},
        )
        assert sent.status_code in (200, 202), sent.text
        code = va.get("/dev/sms-outbox", params={"phone": self.staff_phone}).json()["messages"][0]
        member = va.post(
            f"/v1/venues/{venue_id}/sub-admins",
            headers=owner,
            json={"phone": self.staff_phone, "code": code["code"]},
        )
        assert member.status_code == 201, member.text
        taken = va.put(
            f"/v1/venues/{venue_id}/members/{member.json()['user_id']}/permissions",
            headers=owner,
            json={"permissions": []},
        )
        assert taken.status_code == 200, taken.text
        return venue_id

    def apply(self) -> tuple[dict[str, Any], str]:
        """A new credential (a person the verifier has not seen) and its ID number."""
        family = sign_in(self.api.issuer, make_phone())
        id_number = make_id_number(date(1950, 3, 8))
        applied = apply_for(self.api.issuer, family, id_number)
        assert applied.status_code == 201, applied.text
        return {**applied.json(), "_family": family}, id_number

    def verify(self, qr: str) -> dict[str, Any]:
        answer = self.api.verifier.post(
            "/v1/verify", headers=self.staff, json={"qr": qr, "venue_id": self.venue_id}
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def sms_code(self) -> str:
        messages = self.api.issuer.get("/dev/sms-outbox", params={"phone": self.staff_phone})
        return str(messages.json()["messages"][0]["code"])


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    # Two sign-ins of one number on the page (two browsers): a second's spacing between codes.
    with own_stack(
        "browser",
        ISSUER_OTP_MIN_INTERVAL_SECONDS="1",
        VENUE_ADMIN_OTP_MIN_INTERVAL_SECONDS="1",
    ) as (stack, api):
        yield System(stack, api)


@pytest.fixture(scope="module")
def playwright(system: System) -> Iterator[Playwright]:
    """After the stack: Playwright's sync API keeps an event loop of its own in this thread,
    and the stack's migrations run theirs with asyncio.run()."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def card(system: System, artifacts: Path) -> tuple[dict[str, Any], str, Path]:
    """A printed card filmed by the fake camera: the credential, its ID number, the video."""
    credential, id_number = system.apply()
    pdf = system.api.issuer.get(
        f"/v1/family/credentials/{credential['credential_id']}/card.pdf",
        headers=credential["_family"],
    )
    assert pdf.status_code == 200, pdf.text
    video, frame = card_video(pdf.content, artifacts)
    say(f"\ncamera frame: {frame}")
    return credential, id_number, video


def shot(page: Page, artifacts: Path, name: str) -> Path:
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    say(f"\nscreenshot {name}: {path}")
    return path


def sign_in_on_page(page: Page, system: System, artifacts: Path, prefix: str) -> None:
    """Staff sign-in and the venue picker, as a person does them."""
    page.goto(system.stack.url("verifier") + "/scan")  # the redirect to /scan/ included
    expect(page.locator("#signin-view")).to_be_visible()
    expect(page.locator("#signin-view h2")).to_have_text("工作人员登录")
    page.fill("#phone", system.staff_phone)
    page.click("#send-code")
    expect(page.locator("#code-form")).to_be_visible()
    page.fill("#code", system.sms_code())
    shot(page, artifacts, f"{prefix}-1-sign-in")
    page.click("#sign-in")
    venues = page.locator("#venue-list button")
    expect(venues).to_have_count(1)  # not the venue where reverse_scan was taken away
    expect(venues.first).to_have_attribute("data-venue-id", system.venue_id)
    expect(venues.first).to_contain_text("南宁东站")
    shot(page, artifacts, f"{prefix}-2-venue-picker")
    venues.first.click()
    expect(page.locator("#band")).to_have_attribute("data-state", "idle")
    expect(page.locator("#qr-input")).to_be_focused()


def launch(playwright: Playwright, *extra: str) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra])


def page_in(browser: Browser, locale: str = "zh-CN") -> Page:
    context = browser.new_context(locale=locale, viewport={"width": 800, "height": 900})
    return context.new_page()


def expect_answer(page: Page, state: str, words: str, colour: str) -> None:
    band = page.locator("#band")
    expect(band).to_have_attribute("data-state", state, timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#decision")).to_have_text(words)
    expect(band).to_have_css("background-color", colour)


@pytest.fixture(scope="module")
def camera_page(
    playwright: Playwright, system: System, card: tuple[dict[str, Any], str, Path], artifacts: Path
) -> Iterator[Page]:
    """Signed in, the venue picked, the camera filming the card."""
    browser = launch(playwright, f"--use-file-for-fake-video-capture={card[2]}")
    try:
        page = page_in(browser)
        sign_in_on_page(page, system, artifacts, "camera")
        yield page
    finally:
        browser.close()


@pytest.fixture(scope="module")
def scanner_page(playwright: Playwright, system: System, artifacts: Path) -> Iterator[Page]:
    """Signed in, the venue picked; the fake camera films no card (a handheld scanner)."""
    browser = launch(playwright)
    try:
        page = page_in(browser)
        sign_in_on_page(page, system, artifacts, "scanner")
        yield page
    finally:
        browser.close()


def test_1_a_printed_card_through_the_camera_passes(
    camera_page: Page, card: tuple[dict[str, Any], str, Path], artifacts: Path
) -> None:
    credential = card[0]
    expect_answer(camera_page, "pass", "通行", GREEN)
    holder = credential["holder"]
    expect(camera_page.locator("#holder")).to_have_text(f"李*华 · {holder['age']}岁")
    expect(camera_page.locator("#lines")).to_contain_text("绿码")
    expect(camera_page.locator("#stale")).to_be_hidden()
    expect(camera_page.locator("#count")).to_contain_text("本次已扫")
    shot(camera_page, artifacts, "3-camera-pass")
    metrics = camera_page.evaluate("window.scanMetrics")
    assert metrics["lastSound"] == "pass"
    say(f"\ndecoded QR to answer shown: {metrics['lastDecodeToAnswerMs']:.0f} ms (camera)")


def test_2_the_same_card_after_the_code_turns_red_is_denied(
    camera_page: Page, system: System, card: tuple[dict[str, Any], str, Path], artifacts: Path
) -> None:
    _credential, id_number, _video = card
    red = system.api.health_records.post(
        "/v1/codes", headers=AUTHORITY, json={"id_number": id_number, "color": "red", "reason": "x"}
    )
    assert red.status_code == 200, red.text
    # The card stays in front of the camera: the page scans it again by itself.
    expect_answer(camera_page, "deny", "禁止通行", RED)
    expect(camera_page.locator("#lines")).to_contain_text("红码")
    shot(camera_page, artifacts, "4-camera-red-denied")
    assert camera_page.evaluate("window.scanMetrics.lastSound") == "deny"


def scanner_types(page: Page, text: str) -> None:
    """A handheld scanner: the QR's text typed into the focused field, then Enter."""
    expect(page.locator("#qr-input")).to_be_focused()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def test_3_a_revoked_card_from_a_handheld_scanner_is_denied(
    scanner_page: Page, system: System, artifacts: Path
) -> None:
    credential, _ = system.apply()
    deleted = system.api.issuer.delete(
        f"/v1/family/credentials/{credential['credential_id']}", headers=credential["_family"]
    )
    assert deleted.status_code == 204
    # The revocation reaches the verifier as an event: once it answers so, the page is asked.
    assert poll(lambda: system.verify(credential["qr"])["reasons"] == ["credential_revoked"], 5.0)
    scanner_types(scanner_page, credential["qr"])
    expect_answer(scanner_page, "deny", "禁止通行", GREY)
    expect(scanner_page.locator("#lines")).to_contain_text("凭证已作废")
    expect(scanner_page.locator("#holder")).to_have_text("")
    expect(scanner_page.locator("#qr-input")).to_have_value("")
    expect(scanner_page.locator("#qr-input")).to_be_focused()
    shot(scanner_page, artifacts, "5-scanner-revoked-denied")
    say(
        "\ndecoded QR to answer shown: "
        f"{scanner_page.evaluate('window.scanMetrics.lastDecodeToAnswerMs'):.0f} ms (scanner)"
    )


def test_4_health_records_down_a_new_person_needs_a_manual_check(
    scanner_page: Page, system: System, artifacts: Path
) -> None:
    credential, _ = system.apply()
    system.stack.stop_process("health-records")
    try:
        scanner_types(scanner_page, credential["qr"])
        expect_answer(scanner_page, "manual_check", "人工核验", GREY)
        expect(scanner_page.locator("#holder")).to_contain_text("李*华")
        shot(scanner_page, artifacts, "6-scanner-health-records-down-manual-check")
    finally:
        system.stack.start_service("health-records")
        system.stack.wait_ready(60, names=["health-records"])


def test_errors_are_said_in_words_and_the_page_is_ready_again(
    scanner_page: Page, system: System, artifacts: Path
) -> None:
    """The venue taken away from under the page: 403 in words, then a sign-out token: back
    to the sign-in with a message."""
    page = scanner_page
    venue = page.evaluate("sessionStorage.getItem('hc.scan.venue')")
    page.evaluate(
        "v => sessionStorage.setItem('hc.scan.venue', v)",
        venue.replace(system.venue_id, system.venue_without_scan),
    )
    page.reload()
    expect(page.locator("#band")).to_have_attribute("data-state", "idle")
    scanner_types(page, "GXHC1:not-a-card")
    expect(page.locator("#band")).to_have_attribute("data-state", "error")
    expect(page.locator("#lines")).to_have_text("您在此场所没有反向扫码权限。")
    shot(page, artifacts, "7-scanner-error-forbidden")
    page.evaluate(
        "() => { const s = JSON.parse(sessionStorage.getItem('hc.scan.session'));"
        " s.access_token = 'expired';"
        " sessionStorage.setItem('hc.scan.session', JSON.stringify(s)); }"
    )
    page.reload()
    expect(page.locator("#band")).to_have_attribute("data-state", "idle")
    scanner_types(page, "GXHC1:another")
    expect(page.locator("#signin-view")).to_be_visible()
    expect(page.locator("#message")).to_have_text("登录已过期，请重新登录。")
    shot(page, artifacts, "8-signed-out")


def test_english_when_the_browser_prefers_it(playwright: Playwright, system: System) -> None:
    browser = launch(playwright)
    try:
        page = page_in(browser, locale="en-GB")
        page.goto(system.stack.url("verifier") + "/scan/")
        expect(page.locator("#signin-view h2")).to_have_text("Staff sign-in")
        expect(page.locator("#send-code")).to_have_text("Send code")
    finally:
        browser.close()


def test_first_load_weight_and_time_to_interactive(playwright: Playwright, system: System) -> None:
    browser = launch(playwright)
    try:
        page = page_in(browser)  # a new context: a cold cache
        finished: list[Any] = []
        page.on("requestfinished", lambda request: finished.append(request))
        page.goto(system.stack.url("verifier") + "/scan/")
        page.wait_for_function("performance.getEntriesByName('scan:ready').length > 0")
        expect(page.locator("#signin-view")).to_be_visible()
        total = 0
        for request in finished:
            sizes = request.sizes()
            total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        timing = page.evaluate(
            "() => { const n = performance.getEntriesByType('navigation')[0];"
            " return {dom: n.domInteractive, loaded: n.loadEventEnd,"
            " ready: performance.getEntriesByName('scan:ready')[0].startTime}; }"
        )
        names = sorted(urlparse(r.url).path for r in finished)
        say(f"\nfirst load, cold cache: {total} bytes in {len(finished)} responses {names}")
        say(
            f"time to interactive: {timing['ready']:.0f} ms to the sign-in form "
            f"(DOM interactive {timing['dom']:.0f} ms, load {timing['loaded']:.0f} ms)"
        )
        assert total < MAX_FIRST_LOAD_BYTES
        assert "/scan/config.json" in names and "/scan/assets/vendor/jsQR.min.js" in names
    finally:
        browser.close()


@pytest.mark.parametrize("service", ["issuer", "venue-admin", "health-records", "verifier"])
def test_docs_render_offline(playwright: Playwright, system: System, service: str) -> None:
    """Swagger UI of each service, every request that leaves 127.0.0.1 refused."""
    blocked: list[str] = []

    def local_only(route: Route) -> None:
        if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    browser = launch(playwright)
    try:
        page = page_in(browser)
        page.route("**/*", local_only)
        page.goto(system.stack.url(service) + "/docs")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible(timeout=10_000)
        assert operations.count() > 1
        assert blocked == [], f"/docs of {service} asked for {blocked}"
    finally:
        browser.close()
