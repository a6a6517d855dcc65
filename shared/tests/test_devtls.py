"""HTTPS for the local run (hc_common.devtls, `HC_HTTPS`): the certificate names the run's
addresses and is kept across starts; the proxy serves a plain HTTP port over TLS; each
service of a stack allows its verifier's origins by CORS."""

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from hc_common.devstack import RunSettings, Stack, free_port
from hc_common.devtls import TlsProxy, ensure_certificate, lan_addresses


def test_the_certificate_names_localhost_and_the_lan_and_is_kept(tmp_path: Path) -> None:
    cert_path, key_path = ensure_certificate(tmp_path / "tls")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    ips = {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", *lan_addresses()} <= ips
    assert key_path.stat().st_mode & 0o077 == 0
    again, _ = ensure_certificate(tmp_path / "tls")
    assert again.read_bytes() == cert_path.read_bytes()  # a phone that trusted it stays so


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_proxy_serves_the_plain_port_over_tls(tmp_path: Path) -> None:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    cert, key = ensure_certificate(tmp_path / "tls")
    proxy = TlsProxy(free_port(), backend.server_address[1], cert, key, host="127.0.0.1")
    proxy.start()
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=trusting) as client:
            for path in ("/readyz", "/docs"):
                answer = client.get(f"https://127.0.0.1:{proxy.port}{path}")
                assert answer.status_code == 200 and answer.text == f"hello {path}"
        with pytest.raises(httpx.ConnectError):  # self-signed: untrusted unless accepted
            httpx.get(f"https://127.0.0.1:{proxy.port}/", verify=True)
    finally:
        proxy.stop()
        backend.shutdown()


def test_https_setting() -> None:
    assert RunSettings.from_env({}).https_port is None
    assert RunSettings.from_env({"HC_HTTPS": "1"}).https_port == 8443
    assert RunSettings.from_env({"HC_HTTPS": "9443"}).stack().https_port == 9443
    with pytest.raises(ValueError):
        RunSettings.from_env({"HC_HTTPS": "maybe"})


def test_a_stacks_services_allow_its_verifiers_origins(tmp_path: Path) -> None:
    stack = Stack(
        tmp_path, ports={"issuer": 1, "venue-admin": 2, "health-records": 3, "verifier": 4}
    )
    origins = stack.service_env("issuer")["CORS_ORIGINS"].split(",")
    assert {"http://127.0.0.1:4", "http://localhost:4", "http://127.0.0.1:8004"} <= set(origins)
    assert not any(o.startswith("https://127.0.0.1:4") for o in origins)
    stack.https_port = 9443
    stack.env["CORS_ORIGINS"] = "https://staff.example"
    origins = stack.service_env("venue-admin")["CORS_ORIGINS"].split(",")
    assert origins[0] == "https://staff.example" and "http://127.0.0.1:8004" not in origins
    assert {"https://127.0.0.1:9443", "https://localhost:9443"} <= set(origins)
    assert {f"https://{a}:9443" for a in lan_addresses()} <= set(origins)
