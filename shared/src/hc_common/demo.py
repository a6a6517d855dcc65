"""`make demo`: seed a running local system (`make run`) with something to look at, and say
what to try next.

It makes, over the public HTTP interface and the dev endpoints, on fresh random phone numbers
and ID numbers each run (so a second run is never held up by the one-code-a-minute limit or a
credential that exists): a family member with two credentials (a grandparent aged 70 or more,
a child under 16), NAT results and vaccinations for both, a venue with its rule, a sub-admin
added by the code flow and a gate device, and one gate scan. Then it prints the phone numbers,
ids, the device's secret, ready-to-paste curl commands and the docs' addresses.

The services are found where `make run` puts them: 127.0.0.1 on the ports of `HC_PORTS` (else
8001-8004), or at `--issuer-url` etc.
"""

import argparse
import random
import shlex
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from hc_common.clock import cst_today
from hc_common.devstack import DEV_API_KEYS, RunSettings
from hc_common.testing import PHOTO_PNG, make_id_number

SERVICE_NAMES = ("issuer", "venue-admin", "health-records", "verifier")
READY_WAIT_SECONDS = 30.0

_random = random.SystemRandom()


class DemoError(Exception):
    """A step of the seeding failed: the message says which, and what the service answered."""


def random_phone() -> str:
    """A mainland mobile number (11 digits, starting 13-19), new at every call."""
    return f"1{_random.choice('3456789')}{_random.randrange(10**9):09d}"


def random_id_number(min_age: int, max_age: int, female: bool, today: date) -> str:
    """A valid resident ID number (GB 11643-1999) of someone aged `min_age` to `max_age`
    (in full years) today, from a Guangxi region code; even sequence numbers are women's."""
    youngest = today - timedelta(days=int(min_age * 365.25) + 2)
    oldest = today - timedelta(days=int((max_age + 1) * 365.25) - 2)
    birth = date.fromordinal(_random.randint(oldest.toordinal(), youngest.toordinal()))
    region = _random.choice(["450102", "450103", "450105", "450202", "450303", "450521"])
    sequence = _random.randrange(0, 500) * 2 + (0 if female else 1)
    return make_id_number(birth, region, sequence)


@dataclass
class Seeded:
    """What the demo made, for the summary."""

    family_phone: str = ""
    family_token: str = ""
    admin_phone: str = ""
    admin_token: str = ""
    sub_admin_phone: str = ""
    credentials: list[dict[str, Any]] = field(default_factory=list)
    id_numbers: list[str] = field(default_factory=list)
    venue_id: str = ""
    venue_name: str = ""
    device_id: str = ""
    device_secret: str = ""
    device_name: str = ""
    device_token: str = ""
    nat_results: int = 0
    vaccinations: int = 0
    rule: dict[str, Any] = field(default_factory=dict)
    first_scan: dict[str, Any] = field(default_factory=dict)


class Demo:
    def __init__(self, urls: Mapping[str, str], timeout: float = 15) -> None:
        self.urls = dict(urls)
        self.http = httpx.Client(timeout=timeout)
        self.seeded = Seeded()

    def close(self) -> None:
        self.http.close()

    # --- HTTP ------------------------------------------------------------------------------

    def call(
        self,
        step: str,
        service: str,
        method: str,
        path: str,
        expect: int,
        token: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """One request; the JSON answer when its status is `expect`, else DemoError."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.urls[service] + path
        try:
            response = self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise DemoError(f"{step}: {method} {url} failed: {exc}") from None
        if response.status_code != expect:
            raise DemoError(
                f"{step}: {method} {url} answered {response.status_code} "
                f"(expected {expect}): {response.text[:500]}"
            )
        return response.json() if response.content else None

    def check_running(self) -> None:
        """Every service answers /readyz 200 (waiting a little for one still starting), else
        DemoError saying to start the system first."""
        deadline = time.monotonic() + READY_WAIT_SECONDS
        for name in SERVICE_NAMES:
            url = self.urls[name]
            while True:
                try:
                    status = self.http.get(url + "/readyz", timeout=3).status_code
                except httpx.HTTPError:
                    raise DemoError(
                        f"Nothing answers at {url} ({name}). Start the system first, with "
                        "`make run` in another terminal (and the same HC_PORTS, if you set "
                        "them), then run `make demo` again."
                    ) from None
                if status == 200:
                    break
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"{name} at {url} is not ready (/readyz {status} for "
                        f"{READY_WAIT_SECONDS:g} s): see the console of `make run`."
                    )
                time.sleep(0.5)

    def sign_in(self, phone: str) -> str:
        """Sign in at the issuer with the code from its dev SMS outbox: the access token."""
        self.call("sign-in code", "issuer", "POST", "/v1/auth/otp", 202, json={"phone": phone})
        outbox = self.call(
            "dev SMS outbox", "issuer", "GET", "/dev/sms-outbox", 200, params={"phone": phone}
        )
        code = outbox["messages"][0]["code"]
        answer = self.call(
            "sign-in", "issuer", "POST", "/v1/auth/token", 200, json={"phone": phone, "code": code}
        )
        return str(answer["access_token"])

    # --- the seeding -------------------------------------------------------------------------

    def apply(self, name: str, id_number: str, relationship: str) -> dict[str, Any]:
        face = self.call(
            "face check",
            "issuer",
            "POST",
            "/dev/face-checks",
            200,
            json={"name": name, "id_number": id_number},
        )
        credential: dict[str, Any] = self.call(
            f"application ({relationship})",
            "issuer",
            "POST",
            "/v1/family/credentials",
            201,
            token=self.seeded.family_token,
            json={
                "name": name,
                "id_number": id_number,
                "relationship": relationship,
                "photo": PHOTO_PNG,
                "face_check_token": face["face_check_token"],
            },
        )
        return credential

    def seed_family(self, today: date) -> list[tuple[str, str]]:
        s = self.seeded
        s.family_phone = random_phone()
        s.family_token = self.sign_in(s.family_phone)
        surname = _random.choice("李王张刘陈黄覃韦")
        people = [
            (
                surname + _random.choice(["秀华", "桂英", "淑芬", "玉兰", "凤英"]),
                random_id_number(70, 85, True, today),
                "grandparent",
            ),
            (
                surname + _random.choice(["子涵", "梓萱", "浩然", "一诺", "宇轩"]),
                random_id_number(4, 14, False, today),
                "child",
            ),
        ]
        for name, id_number, relationship in people:
            s.credentials.append(self.apply(name, id_number, relationship))
            s.id_numbers.append(id_number)
        return [(name, id_number) for name, id_number, _ in people]

    def seed_health(self, people: list[tuple[str, str]]) -> None:
        """A lab's batch of negative NAT results (sampled 20 and 30 hours ago) and a
        vaccination site's batch: three doses for the grandparent, two for the child."""
        now = datetime.now(UTC).replace(microsecond=0)
        results = [
            {
                "report_id": f"DEMO-NAT-{uuid.uuid4().hex[:12]}",
                "id_number": id_number,
                "name": name,
                "sample_time": (now - timedelta(hours=hours)).isoformat(),
                "report_time": (now - timedelta(hours=hours - 6)).isoformat(),
                "result": "negative",
                "institution": "南宁市第一人民医院",
            }
            for (name, id_number), hours in zip(people, (20, 30), strict=True)
        ]
        answer = self.call(
            "NAT results (lab batch)",
            "health-records",
            "POST",
            "/v1/nat-results/batch",
            200,
            token=DEV_API_KEYS["lab"],
            json={"results": results},
        )
        if answer["rejected"]:
            raise DemoError(f"NAT results rejected: {answer['rejected']}")
        self.seeded.nat_results = answer["accepted"]
        records = []
        for (name, id_number), doses in zip(people, (3, 2), strict=True):
            for dose in range(1, doses + 1):
                records.append(
                    {
                        "record_id": f"DEMO-VAC-{uuid.uuid4().hex[:12]}",
                        "id_number": id_number,
                        "name": name,
                        "vaccine": "新冠病毒灭活疫苗(Vero细胞)",
                        "manufacturer": "北京科兴中维",
                        "dose_number": dose,
                        "administered_at": (now - timedelta(days=400 - 60 * dose)).isoformat(),
                        "site": "青秀区凤岭社区卫生服务中心",
                    }
                )
        answer = self.call(
            "vaccinations (vaccination site batch)",
            "health-records",
            "POST",
            "/v1/vaccinations/batch",
            200,
            token=DEV_API_KEYS["vaccination_site"],
            json={"records": records},
        )
        if answer["rejected"]:
            raise DemoError(f"vaccinations rejected: {answer['rejected']}")
        self.seeded.vaccinations = answer["accepted"]

    def seed_venue(self) -> None:
        s = self.seeded
        s.admin_phone = random_phone()
        s.admin_token = self.sign_in(s.admin_phone)
        s.venue_name = "南宁东站"
        venue = self.call(
            "venue",
            "venue-admin",
            "POST",
            "/v1/venues",
            201,
            token=s.admin_token,
            json={
                "name": s.venue_name,
                "category": "train_station",
                "address": "青秀区凤岭北路",
                "region_code": "450103",
            },
        )
        s.venue_id = venue["venue_id"]
        base = f"/v1/venues/{s.venue_id}"
        s.rule = self.call(
            "venue rule",
            "venue-admin",
            "PUT",
            f"{base}/rule",
            200,
            token=s.admin_token,
            json={"allowed_colors": ["green"], "max_nat_age_hours": 72, "min_vaccine_doses": 2},
        )
        # A sub-admin (分管员): a code to their phone from venue-admin, then phone and code.
        s.sub_admin_phone = random_phone()
        self.call(
            "sub-admin code",
            "venue-admin",
            "POST",
            f"{base}/sub-admins/code",
            202,
            token=s.admin_token,
            json={"phone": s.sub_admin_phone},
        )
        outbox = self.call(
            "dev SMS outbox (venue-admin)",
            "venue-admin",
            "GET",
            "/dev/sms-outbox",
            200,
            params={"phone": s.sub_admin_phone},
        )
        self.call(
            "sub-admin",
            "venue-admin",
            "POST",
            f"{base}/sub-admins",
            201,
            token=s.admin_token,
            json={"phone": s.sub_admin_phone, "code": outbox["messages"][0]["code"]},
        )
        s.device_name = "北门1号闸机"
        device = self.call(
            "gate device",
            "venue-admin",
            "POST",
            f"{base}/devices",
            201,
            token=s.admin_token,
            json={"name": s.device_name, "manufacturer": "示例电子", "model": "G-100"},
        )
        s.device_id, s.device_secret = device["device_id"], device["device_secret"]
        s.device_token = self.device_token()

    def device_token(self) -> str:
        s = self.seeded
        answer = self.call(
            "device token",
            "venue-admin",
            "POST",
            "/v1/devices/token",
            200,
            json={"device_id": s.device_id, "device_secret": s.device_secret},
        )
        return str(answer["access_token"])

    def first_scan(self) -> None:
        """The gate scans the grandparent's card once. A venue the verifier has not heard of
        yet (its event on the way) answers 404 for a moment: asked again briefly."""
        s = self.seeded
        deadline = time.monotonic() + 10
        while True:
            try:
                s.first_scan = self.call(
                    "gate scan",
                    "verifier",
                    "POST",
                    "/v1/gate/verify",
                    200,
                    token=s.device_token,
                    json={"qr": s.credentials[0]["qr"]},
                )
                return
            except DemoError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def run(self) -> Seeded:
        self.check_running()
        people = self.seed_family(cst_today())
        self.seed_health(people)
        self.seed_venue()
        self.first_scan()
        return self.seeded


def curl(method: str, url: str, token: str | None = None, body: str | None = None) -> str:
    """A curl command line that can be pasted into a shell as it is."""
    parts = ["curl", "-sS"]
    if method != "GET":
        parts += ["-X", method]
    parts.append(shlex.quote(url))
    if token:
        parts += ["-H", shlex.quote(f"Authorization: Bearer {token}")]
    if body is not None:
        parts += ["-H", "'Content-Type: application/json'", "-d", shlex.quote(body)]
    return " ".join(parts)


def summary(seeded: Seeded, urls: Mapping[str, str], seconds: float) -> str:
    s = seeded
    grandparent, child = s.credentials[0], s.credentials[1]
    rule = s.rule
    lines = [
        f"Seeded in {seconds:.1f} s.",
        "",
        "Family (the applicant signs in at the issuer with this phone):",
        f"  phone            {s.family_phone}",
        f"  credential       {grandparent['credential_id']}  {_holder(grandparent)}",
        f"  credential       {child['credential_id']}  {_holder(child)}",
        "  their card       "
        + curl(
            "GET",
            f"{urls['issuer']}/v1/family/credentials/{grandparent['credential_id']}/card.pdf",
            s.family_token,
        )
        + " -o card.pdf",
        "",
        f"Venue {s.venue_name}:",
        f"  venue_id         {s.venue_id}",
        f"  main admin       {s.admin_phone}",
        f"  sub-admin        {s.sub_admin_phone} (holds reverse_scan; not signed in yet)",
        f"  gate device      {s.device_name}",
        f"  device_id        {s.device_id}",
        f"  device_secret    {s.device_secret}",
        f"  rule             colours {','.join(rule['allowed_colors'])}, NAT within "
        f"{rule['max_nat_age_hours']} h, at least {rule['min_vaccine_doses']} doses",
        f"Health records: {s.nat_results} NAT results (negative, lab batch), "
        f"{s.vaccinations} vaccinations (vaccination-site batch).",
        f"First gate scan of {grandparent['holder']['masked_name']}: "
        f"{s.first_scan['decision']} {' / '.join(s.first_scan['lines'])}",
        "",
        "Try next:",
        "",
        "# A gate scans the grandparent's card (the device token is valid 24 hours):",
        curl(
            "POST",
            f"{urls['verifier']}/v1/gate/verify",
            s.device_token,
            f'{{"qr": "{grandparent["qr"]}"}}',
        ),
        "",
        "# The main admin scans the child's card (reverse scan; her token is valid 2 hours):",
        curl(
            "POST",
            f"{urls['verifier']}/v1/verify",
            s.admin_token,
            f'{{"qr": "{child["qr"]}", "venue_id": "{s.venue_id}"}}',
        ),
        "",
        "# A new device token (what the gate does every day):",
        curl(
            "POST",
            f"{urls['venue-admin']}/v1/devices/token",
            None,
            f'{{"device_id": "{s.device_id}", "device_secret": "{s.device_secret}"}}',
        ),
        "",
        "# The venue's access records (JSON; add -H 'Accept: text/csv' for the CSV file):",
        curl("GET", f"{urls['venue-admin']}/v1/venues/{s.venue_id}/access-records", s.admin_token),
        "",
        "# The health authority turns the grandparent's code yellow (then scan again):",
        curl(
            "POST",
            f"{urls['health-records']}/v1/codes",
            DEV_API_KEYS["authority"],
            f'{{"id_number": "{s.id_numbers[0]}", "color": "yellow", "reason": "时空伴随"}}',
        ),
        "",
        f"The staff scanning page: {urls['verifier']}/scan/",
        f"  sign in as the sub-admin {s.sub_admin_phone}, pick {s.venue_name}; the SMS code is in",
        "  " + curl("GET", f"{urls['issuer']}/dev/sms-outbox?phone={s.sub_admin_phone}"),
        "",
        "API docs (Swagger UI):",
        *(f"  {name:15}  {urls[name]}/docs" for name in SERVICE_NAMES),
        "The reference: docs/api.md. Step by step with curl: docs/quickstart.md.",
    ]
    return "\n".join(lines)


def _holder(credential: Mapping[str, Any]) -> str:
    holder = credential["holder"]
    return f"{holder['masked_name']}, {holder['age']}, {holder['relationship']}"


def service_urls(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The services' base URLs: the options, else 127.0.0.1 on the local run's ports."""
    ports = RunSettings.from_env(env).ports
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in SERVICE_NAMES}
    for name in SERVICE_NAMES:
        given = getattr(args, name.replace("-", "_") + "_url")
        if given:
            urls[name] = given.rstrip("/")
    return urls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hc_common.demo",
        description="Seed a running local system (make run) with a family, a venue with a "
        "sub-admin and a gate, NAT results and vaccinations; print what to try next.",
    )
    for name in SERVICE_NAMES:
        parser.add_argument(
            f"--{name}-url",
            metavar="URL",
            help=f"the {name} service (default: http://127.0.0.1 on the port of HC_PORTS, "
            "else the local run's)",
        )
    args = parser.parse_args(argv)
    try:
        urls = service_urls(args)
    except ValueError as exc:
        parser.error(str(exc))
    demo = Demo(urls)
    started = time.monotonic()
    try:
        seeded = demo.run()
    except DemoError as exc:
        print(f"make demo failed: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        demo.close()
    print(summary(seeded, urls, time.monotonic() - started), flush=True)


if __name__ == "__main__":
    main()
