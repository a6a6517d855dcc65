"""HTTPS for the local run (`HC_HTTPS=1 make run`): a self-signed certificate and a small
TLS-terminating TCP proxy in the supervisor, in front of the verifier's plain HTTP port.

Why: browsers give the camera only to a secure origin, and a phone on the venue's network
reaches the laptop by its LAN address, so the staff scanning page (`/scan/`) must be served
over HTTPS there. The verifier itself stays one process on 127.0.0.1:8004 (a second verifier
process for HTTPS would share its journal, which its lock refuses); the proxy listens on all
addresses on 8443 and pipes each connection, decrypted, to 8004. It runs in the supervisor's
process (a daemon thread), so it ends with the run and outlives a verifier's restart.

Never for production: there, TLS is the ingress's (docs/operations.md).
"""

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
CERT_DAYS = 365


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, as best known without asking
    anyone: the one the default route leaves from (a UDP socket's connect sends nothing) and
    those the host name resolves to."""
    found: list[str] = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere, nothing is sent
        found.append(s.getsockname()[0])
    with contextlib.suppress(OSError):
        found += socket.gethostbyname_ex(socket.gethostname())[2]
    return sorted({a for a in found if not ipaddress.ip_address(a).is_loopback})


def certificate_names() -> tuple[list[str], list[str]]:
    """The names the certificate is for: DNS names and IP addresses."""
    return ["localhost"], ["127.0.0.1", "::1", *lan_addresses()]


def ensure_certificate(directory: Path) -> tuple[Path, Path]:
    """The run's certificate and key under `directory` (`<run dir>/tls/`): kept while it still
    names every current address and is valid for a day more (a phone that accepted it once is
    not asked again), else generated anew. Returns (cert, key)."""
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    dns_names, ips = certificate_names()
    if cert_path.exists() and key_path.exists():
        with contextlib.suppress(ValueError, x509.ExtensionNotFound):
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = {str(a) for a in names.get_values_for_type(x509.IPAddress)}
            fresh = cert.not_valid_after_utc > _now() + datetime.timedelta(days=1)
            if fresh and set(ips) <= have:
                return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "health code local run")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in dns_names]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class TlsProxy:
    """Accepts TLS on `host:port` and pipes each connection to 127.0.0.1:`target` in plain
    TCP, in a daemon thread of its own (the supervisor's loop is not asyncio)."""

    def __init__(self, port: int, target: int, cert: Path, key: Path, host: str = "0.0.0.0"):
        self.port, self.target, self.host = port, target, host
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        """Listen (raises OSError when the port is taken), then serve in the thread."""
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._pipe, self.host, self.port, ssl=self.context)
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    async def _pipe(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_in, upstream_out = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:  # the verifier is being started again: the browser retries
            client_out.close()
            return
        await asyncio.gather(
            _copy(client_in, upstream_out), _copy(upstream_in, client_out), return_exceptions=True
        )


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            sink.close()
