"""An idle connection outlives its clients' own keep-alive (httpx drops theirs after 5 s, an
ingress after 60 s): a request sent on a connection idle for 6 s is answered, not met by a
connection the service has just closed (uvicorn's default closed it at 5 s, and a test
client's POST raced that close once in CI)."""

import http.client
import time
from urllib.parse import urlsplit

import pytest

from hc_common.devstack import Stack

pytestmark = pytest.mark.e2e


def test_a_connection_idle_past_a_clients_keep_alive_is_still_served(stack: Stack) -> None:
    address = urlsplit(stack.url("verifier"))
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() and connection.sock is not None
        first = connection.sock
        time.sleep(6)
        connection.request("GET", "/healthz")  # on the same socket: http.client keeps it
        assert connection.sock is first
        assert connection.getresponse().status == 200
    finally:
        connection.close()
