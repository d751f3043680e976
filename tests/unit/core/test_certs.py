"""``wool certs init`` and ``WorkerCredentials``: what they write, what they refuse."""

from __future__ import annotations

import ipaddress
import pathlib
import stat

import grpc
import grpc.aio
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from wool import certs
from wool.credentials import TLS_NAME, WorkerCredentials
from wool.errors import CredentialsError
from wool.mesh import transport
from wool.mesh.connection import CHANNEL_OPTIONS


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    return certs.init(tmp_path_factory.mktemp("certs") / "new", hosts=["host-b", "10.0.0.7"])


def test_init_writes_every_file_and_keeps_secrets_private(made: dict[str, pathlib.Path]) -> None:
    assert sorted(made) == sorted(certs.FILES)
    for name, path in made.items():
        mode = stat.S_IMODE(path.stat().st_mode)
        if name.endswith(".key") or name == "mesh.secret":
            assert mode == 0o600, name
        else:
            assert not mode & 0o022, name
    assert len(bytes.fromhex(made["mesh.secret"].read_text().strip())) == 32


def test_init_says_production_needs_its_own_ca(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certs.init(tmp_path)
    assert "production" in capsys.readouterr().err


def test_leaf_certificates_name_the_mesh_and_chain_to_its_ca(
    made: dict[str, pathlib.Path],
) -> None:
    ca = x509.load_pem_x509_certificate(made["ca.pem"].read_bytes())
    for leaf in ("worker.pem", "client.pem"):
        cert = x509.load_pem_x509_certificate(made[leaf].read_bytes())
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {TLS_NAME, "localhost", "host-b"} <= set(san.get_values_for_type(x509.DNSName))
        addresses = set(san.get_values_for_type(x509.IPAddress))
        assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.7")} <= addresses
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in usage  # workers dial peers with their own
        assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_from_files_reads_pem_and_builds_grpc_credentials(made: dict[str, pathlib.Path]) -> None:
    creds = WorkerCredentials.from_files(
        ca_path=made["ca.pem"], key_path=made["worker.key"], cert_path=made["worker.pem"]
    )
    assert creds.mutual and creds.ca == made["ca.pem"].read_bytes()
    assert creds.server_credentials() is not None
    assert creds.channel_credentials() is not None
    assert WorkerCredentials.from_config(creds.to_config()) == creds
    assert "PRIVATE" not in repr(creds)


def test_unusable_credentials_are_refused_with_a_typed_error(
    made: dict[str, pathlib.Path], tmp_path: pathlib.Path
) -> None:
    with pytest.raises(CredentialsError, match="cannot read key_path"):
        WorkerCredentials.from_files(
            ca_path=made["ca.pem"], key_path=tmp_path / "missing", cert_path=made["worker.pem"]
        )
    with pytest.raises(CredentialsError, match="key is not a PEM PRIVATE KEY"):
        WorkerCredentials.from_files(
            ca_path=made["ca.pem"], key_path=made["worker.pem"], cert_path=made["worker.pem"]
        )
    with pytest.raises(CredentialsError, match="must be PEM bytes"):
        WorkerCredentials("ca", b"", b"")  # type: ignore[arg-type]
    assert issubclass(CredentialsError, ValueError)


def test_tls_channels_keep_the_keepalive_options_and_check_the_mesh_name(
    made: dict[str, pathlib.Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, tuple] = {}

    def fake(address: str, credentials: object, options: tuple) -> None:
        seen["options"] = options

    monkeypatch.setattr(grpc.aio, "secure_channel", fake)
    creds = WorkerCredentials.from_files(
        ca_path=made["ca.pem"], key_path=made["client.key"], cert_path=made["client.pem"]
    )
    transport.aio_channel("host-b:7700", creds, CHANNEL_OPTIONS)
    options = dict(seen["options"])
    assert set(CHANNEL_OPTIONS) <= set(seen["options"])  # 1 s ping, 2 s timeout: dead links
    assert options["grpc.keepalive_time_ms"] == 1_000
    assert options["grpc.ssl_target_name_override"] == TLS_NAME


_HANDSHAKE = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls handshake "
    "failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK"
)
_CLOSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:x:1: Socket closed"
_REFUSED = "failed to connect to all addresses; last error: UNKNOWN: x:1: Connection refused"


def test_only_certain_tls_failures_count_as_refusals(made: dict[str, pathlib.Path]) -> None:
    creds = WorkerCredentials.from_files(
        ca_path=made["ca.pem"], key_path=made["client.key"], cert_path=made["client.pem"]
    )
    unavailable = grpc.StatusCode.UNAVAILABLE
    assert "another CA" in (transport.refusal(unavailable, _HANDSHAKE, creds) or "")
    assert "serves TLS" in (transport.refusal(unavailable, _CLOSED, None) or "")
    one_way = WorkerCredentials(creds.ca, creds.key, creds.cert, mutual=False)
    assert "client certificate" in (transport.refusal(unavailable, _CLOSED, one_way) or "")
    assert transport.refusal(unavailable, _REFUSED, creds) is None
    assert transport.refusal(grpc.StatusCode.INTERNAL, _HANDSHAKE, creds) is None
    assert transport.tls_failure(unavailable, _HANDSHAKE)
    assert not transport.tls_failure(unavailable, _REFUSED)
