"""TLS to NATS: a nats-server with a certificate from a CA this test makes; our transport
verifies it with ``AGENTMESH_TLS_CA_FILE`` (``tls_ca_file``) and refuses it without."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.errors import BrokerUnavailable, ConfigError
from agentmesh.mesh import Mesh
from agentmesh.runtime.embedded import EmbeddedNats
from agentmesh.transports import create_transport
from tests.helpers import eventually

pytestmark = pytest.mark.integration


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """(CA cert, server cert, server key) files: a self-signed CA and a 127.0.0.1 cert."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentmesh test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_key_pem(key))
    return paths


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    certs = tmp_path_factory.mktemp("certs")
    ca, cert, key = make_ca_and_server_cert(certs)
    server = EmbeddedNats(
        tmp_path_factory.mktemp("nats-tls"),
        port=None,
        extra_config=f'tls {{ cert_file: "{cert}"\n key_file: "{key}" }}\n',
    )
    url = server.start().replace("nats://", "tls://")
    yield url, ca
    server.stop()


async def test_the_transport_verifies_the_server_with_the_ca_file(
    tls_nats: tuple[str, Path],
) -> None:
    url, ca = tls_nats
    transport = create_transport(url, tls_ca_file=str(ca))
    await transport.connect()
    got: list[Any] = []

    async def handler(msg: Any) -> None:
        got.append(msg.envelope.payload)

    try:
        await transport.subscribe("am.tls.evt.ping", handler)
        await transport.publish(
            "am.tls.evt.ping", Envelope.create("ping", {"n": 1}, tenant_id="tls")
        )
        await eventually(lambda: got == [{"n": 1}], 10)
    finally:
        await transport.close()


async def test_an_unknown_ca_or_plaintext_is_refused(tls_nats: tuple[str, Path]) -> None:
    url, _ = tls_nats
    untrusted = create_transport(url, connect_timeout=2.0)  # the system trust store only
    with pytest.raises(BrokerUnavailable):
        await untrusted.connect()
    await untrusted.close()
    with pytest.raises(ConfigError, match="CA file"):
        await create_transport(url, tls_ca_file="/nonexistent/ca.pem").connect()


async def test_a_mesh_takes_the_ca_file_from_settings(
    tls_nats: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca = tls_nats
    settings = Settings(agentmesh_data_dir=tmp_path, agentmesh_tls_ca_file=str(ca))  # type: ignore[call-arg]
    mesh = Mesh(url, tenant="tls", settings=settings)
    await mesh.transport.connect()
    try:
        assert await mesh.transport.ping() >= 0
    finally:
        await mesh.transport.close()
