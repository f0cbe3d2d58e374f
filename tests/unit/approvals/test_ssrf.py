from __future__ import annotations

import pytest

from agentmesh.errors import UnsafeUrl, ValidationError
from agentmesh.security.ssrf import check_public_url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/x",
        "http://10.0.0.5/x",
        "http://192.168.1.1/x",
        "http://172.16.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "http://100.64.1.1/x",
        "http://100.100.100.200/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "https://user:pw@example.com/",
        "",
        "http:///nohost",
    ],
)
def test_refuses_non_public_or_malformed(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_public_url(url)


def test_public_literal_passes_and_error_is_a_validation_error() -> None:
    check_public_url("https://93.184.216.34/hook")
    check_public_url("http://[2606:2800:220:1:248:1893:25c8:1946]:8443/x")
    assert issubclass(UnsafeUrl, ValidationError)


def test_allow_private_lifts_only_the_address_check() -> None:
    check_public_url("http://127.0.0.1:9/hook", allow_private=True)
    with pytest.raises(UnsafeUrl, match="scheme"):
        check_public_url("gopher://127.0.0.1/", allow_private=True)


def test_a_name_resolving_to_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def fake(host: str, port: int, **_kw: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_public_url("https://innocent.example/hook")
