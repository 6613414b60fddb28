"""
TLS client certificates on a real ssl: listener, with a CA, a server and
client certificates generated here: the certificate's common name is the
user (its groups from the users file when it is there); required means no
certificate, no connection.
"""

import datetime
import ipaddress
import socket
import ssl

import pytest
import stomp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.test_auth import admin
from tests.support.broker import free_port
from tests.support.clients import stomp_client

pytestmark = pytest.mark.integration


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer_key, issuer_name, key, ca: bool = False, dns: str | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if dns:
        names = [x509.DNSName(dns), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory, name: str, key, certificate):
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("stompd test CA", ca_key, _name("stompd test CA"), ca_key, ca=True)
    made = {"ca": _write(directory, "ca", ca_key, ca)}
    server_key = ec.generate_private_key(ec.SECP256R1())
    made["server"] = _write(directory, "server", server_key, _certificate("localhost", ca_key, ca.subject, server_key, dns="localhost"))
    for user in ("alice", "mallory"):
        key = ec.generate_private_key(ec.SECP256R1())
        if user == "mallory":
            # Signed by a CA the broker does not trust.
            other = ec.generate_private_key(ec.SECP256R1())
            made[user] = _write(directory, user, key, _certificate(user, other, _name("other CA"), key))
        else:
            made[user] = _write(directory, user, key, _certificate(user, ca_key, ca.subject, key))
    made["directory"] = directory
    return made


def start(tmp_path, broker_process, pki, mode: str):
    users = tmp_path / "users"
    assert admin("--users-file", str(users), "user", "add", "alice", "--groups", "ops", input="pw\n").returncode == 0
    port = free_port()
    key, cert = pki["server"]
    config = (
        f'[auth]\nusers-file = "{users}"\ntls-client-cert = "{mode}"\ntls-ca-certs = "{pki["ca"][1]}"\n'
        '[authorization]\ndefault = "deny"\n[[authorization.rules]]\ngroups = ["ops"]\n'
        'destinations = ["/queue/ops.#"]\npermissions = ["write"]\n'
    )
    running = broker_process(tmp_path, config, args=("--listen", f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"))
    running.ssl_port = port
    return running


def tls_client(port: int, pki, user: str | None, **options):
    conn = stomp.Connection12([("127.0.0.1", port)])
    key_file, cert_file = pki[user] if user else (None, None)
    conn.set_ssl(for_hosts=[("127.0.0.1", port)], key_file=key_file, cert_file=cert_file, ca_certs=pki["ca"][1], ssl_version=ssl.PROTOCOL_TLS_CLIENT)
    return conn


def connects_over_tls(port: int, pki, user: str | None) -> bool:
    """
    Does a CONNECT over TLS, with C{user}'s certificate (or none), get a
    CONNECTED? A plain ssl socket with a timeout: stomp.py, refused, tries
    again and again before it gives up, so it cannot say this in bounded
    time.
    """
    context = ssl.create_default_context(cafile=pki["ca"][1])
    context.check_hostname = False
    if user is not None:
        key_file, cert_file = pki[user]
        context.load_cert_chain(cert_file, key_file)
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
                while b"\x00" not in answer:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
    except (ssl.SSLError, ConnectionError):
        # TLS 1.3: the server's refusal of the certificate comes as an
        # alert after the client has finished its handshake.
        pass
    return answer.startswith(b"CONNECTED")


def test_a_required_certificate_is_the_user_and_brings_its_groups(tmp_path, broker_process, pki):
    running = start(tmp_path, broker_process, pki, "required")
    try:
        conn = tls_client(running.ssl_port, pki, "alice")
        from tests.support.clients import Collector

        collector = Collector()
        conn.set_listener("c", collector)
        conn.connect(wait=True)
        conn.send("/queue/ops.restart", "go", headers={"receipt": "r"})
        assert collector.wait_for(lambda: "r" in collector.receipts)
        conn.disconnect()
        assert "user=alice" in running.log
        assert connects_over_tls(running.ssl_port, pki, "alice")
        for refused in (None, "mallory"):
            assert not connects_over_tls(running.ssl_port, pki, refused)
    finally:
        running.stop()


def test_an_optional_certificate_leaves_passwords_working(tmp_path, broker_process, pki):
    running = start(tmp_path, broker_process, pki, "optional")
    try:
        conn = tls_client(running.ssl_port, pki, None)
        conn.connect("alice", "pw", wait=True)
        assert conn.is_connected()
        conn.disconnect()
        # Plain TCP is not asked for a certificate at all.
        assert stomp_client(running.port, login="alice", passcode="pw").is_connected()
    finally:
        running.stop()
