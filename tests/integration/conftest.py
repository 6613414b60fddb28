"""
Integration fixtures: a real stompd process, started with the installed
C{twistd stompd} on a free loopback port, and real stomp.py clients.
"""

import datetime
import ipaddress
import socket
import time
import uuid
from pathlib import Path

import pytest
import websocket
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.broker import TWISTD, BrokerProcess, free_port, wait_for_port  # noqa: F401 (used by tests)
from tests.support.clients import Collector, disconnect_all, stomp_client  # noqa: F401 (used by tests)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """
    One broker per test module, with short heart-beat floors so heart-beat
    tests run quickly.
    """
    tmp_path = tmp_path_factory.mktemp("broker")
    running = BrokerProcess(
        tmp_path,
        "[heart-beat]\nsend = 100\nreceive = 100\ngrace = 3.0\n",
    )
    yield running
    running.stop()


@pytest.fixture
def connect(broker):
    """
    Make connected stomp.py clients; all are disconnected at teardown.
    """
    made = []

    def make(version: str = "1.2", heartbeats=(0, 0), login="guest", passcode="guest", port=None, **kwargs):
        # port: another broker's, e.g. one from start_broker.
        conn = stomp_client(port or broker.port, version, heartbeats, login, passcode, **kwargs)
        made.append(conn)
        return conn

    yield make
    disconnect_all(made)


class RawFrame:
    """
    A frame read by L{RawClient}: headers keep the first of repeated names,
    values are left escaped.
    """

    def __init__(self, command: str, headers: dict, body: bytes) -> None:
        self.command = command
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<RawFrame {self.command} {self.headers} {self.body[:80]!r}>"


class RawClient:
    """
    A plain socket speaking STOMP bytes, for what a real client library will
    not send: malformed frames, odd splits, raw heart-beats.
    """

    def __init__(self, port: int, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.eof = False
        # Heart-beat EOLs skipped between frames, for heart-beat tests.
        self.beats = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, command: str, headers: dict | None = None, body: bytes = b"", eol: bytes = b"\n") -> None:
        lines = [command] + [f"{name}:{value}" for name, value in (headers or {}).items()]
        self.send(eol.join(line.encode("utf-8") for line in lines) + eol + eol + body + b"\0")

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if self.eof or remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def read_frame(self, timeout: float = 5.0) -> RawFrame | None:
        """
        The next frame, or C{None} if the connection closed or nothing
        arrived in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            stripped = self.buffer.lstrip(b"\r\n")
            self.beats += self.buffer[: len(self.buffer) - len(stripped)].count(b"\n")
            self.buffer = stripped
            frame = self._parse()
            if frame is not None:
                return frame
            if not self._fill(deadline):
                return None

    def _parse(self) -> RawFrame | None:
        end = self.buffer.find(b"\n\n")
        crlf_end = self.buffer.find(b"\r\n\r\n")
        if crlf_end >= 0 and (end < 0 or crlf_end < end):
            head, body_start = self.buffer[:crlf_end], crlf_end + 4
        elif end >= 0:
            head, body_start = self.buffer[:end], end + 2
        else:
            return None
        lines = head.decode("utf-8").replace("\r\n", "\n").split("\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name, value)
        if "content-length" in headers:
            body_end = body_start + int(headers["content-length"])
            if len(self.buffer) <= body_end:
                return None
        else:
            body_end = self.buffer.find(b"\0", body_start)
            if body_end < 0:
                return None
        body = self.buffer[body_start:body_end]
        self.buffer = self.buffer[body_end + 1 :]
        return RawFrame(lines[0], headers, body)

    def connect(self, version: str | None = "1.2", command: str = "CONNECT", **headers) -> RawFrame:
        """
        Send CONNECT (guest/guest unless told otherwise) and return the
        answer, CONNECTED or ERROR.
        """
        sent = {"login": "guest", "passcode": "guest"}
        if version is not None:
            sent["accept-version"] = version
            sent["host"] = "localhost"
        sent.update({name.replace("_", "-"): value for name, value in headers.items()})
        self.send_frame(command, {name: value for name, value in sent.items() if value is not None})
        frame = self.read_frame()
        assert frame is not None, "no answer to CONNECT"
        return frame

    def is_closed(self, timeout: float = 5.0) -> bool:
        """
        Does the broker close the connection within C{timeout}? Whatever it
        sends meanwhile is kept in the buffer.
        """
        deadline = time.monotonic() + timeout
        while not self.eof and self._fill(deadline):
            pass
        return self.eof

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(broker):
    """
    Make L{RawClient}s connected to the module's broker, or to another
    port, or over a given socket (e.g. a TLS one); closed at teardown.
    """
    made = []

    def make(port: int | None = None, sock: socket.socket | None = None) -> RawClient:
        client = RawClient(port or broker.port, sock)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def assert_error_and_close(client: RawClient, message: str | None = None, timeout: float = 5.0) -> RawFrame:
    """
    The broker answers with an ERROR frame that has a C{message} header
    (containing C{message}, if given) and a body, then closes the connection.
    """
    frame = client.read_frame(timeout)
    assert frame is not None, "the broker sent no ERROR frame"
    assert frame.command == "ERROR", frame
    assert frame.headers.get("message"), frame
    assert frame.body, frame
    if message is not None:
        assert message in frame.headers["message"], frame
    assert client.is_closed(timeout), "the broker did not close the connection after ERROR"
    return frame


@pytest.fixture
def assert_serving(connect):
    """
    A check that the broker still serves: a fresh client receives what it
    publishes to a topic.
    """

    def check() -> None:
        conn = connect()
        topic = f"/topic/alive.{uuid.uuid4().hex[:8]}"
        conn.subscribe(topic, id="alive", receipt="alive-sub")
        assert conn.collector.wait_for(lambda: "alive-sub" in conn.collector.receipts)
        conn.send(topic, "still here")
        assert conn.collector.wait_for(lambda: conn.collector.messages)
        assert conn.collector.messages[-1].body == "still here"
        conn.disconnect()

    return check


@pytest.fixture
def expect_error():
    """
    L{assert_error_and_close}, for test modules (conftest is not importable).
    """
    return assert_error_and_close


@pytest.fixture(scope="session")
def broker_process():
    """
    L{BrokerProcess}, for tests that start brokers of their own.
    """
    return BrokerProcess


@pytest.fixture
def start_broker(tmp_path):
    """
    Start brokers with their own configuration (TOML text), for settings
    the module's broker does not have; stopped at teardown.
    """
    started = []

    def start(config: str) -> BrokerProcess:
        directory = tmp_path / f"broker{len(started)}"
        directory.mkdir()
        running = BrokerProcess(directory, config)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def clients():
    """
    Make stomp.py connections to a port (see L{stomp_client}); those left
    connected are disconnected after the test.
    """
    made = []

    def make(port: int, **options):
        conn = stomp_client(port, **options)
        made.append(conn)
        return conn

    yield make
    disconnect_all(made)


@pytest.fixture
def unique():
    """
    Make destination names no other test uses: C{unique("/queue/jobs.")}.
    """

    def make(prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def subscribe():
    """
    Subscribe a stomp.py connection and wait for the broker's receipt, so
    that what is sent next is routed to the new subscription.
    """

    def make(conn, destination: str, id: str = "s", ack: str = "auto", **headers) -> None:
        receipt = f"subscribed-{id}-{uuid.uuid4().hex[:8]}"
        conn.subscribe(destination, id=id, ack=ack, headers=headers, receipt=receipt)
        assert conn.collector.wait_for(lambda: receipt in conn.collector.receipts), f"no receipt for {destination}"

    return make


class WsClient(RawClient):
    """
    A L{RawClient} over a WebSocket (websocket-client, synchronous): each
    L{send} is one WebSocket message, text unless C{binary}; what arrives is
    read as one byte stream, and every message is also kept, with its
    opcode, in C{messages}.

    @ivar close_code: the status code of the broker's close frame, if it
        sent one.
    """

    def __init__(self, url: str, subprotocols=("v12.stomp",), **options) -> None:
        options.setdefault("timeout", 5)
        self.ws = websocket.create_connection(url, subprotocols=list(subprotocols or ()) or None, **options)
        self.sock = self.ws.sock
        self.buffer = b""
        self.eof = False
        self.beats = 0
        self.binary = False
        self.messages: list[tuple[int, bytes]] = []
        self.close_code: int | None = None

    @property
    def subprotocol(self) -> str | None:
        return self.ws.getsubprotocol()

    def send(self, data: bytes, binary: bool | None = None) -> None:
        binary = self.binary if binary is None else binary
        self.ws.send(data, opcode=websocket.ABNF.OPCODE_BINARY if binary else websocket.ABNF.OPCODE_TEXT)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if self.eof or remaining <= 0:
            return False
        self.ws.settimeout(remaining)
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
        except (websocket.WebSocketTimeoutException, socket.timeout):
            return False
        except (websocket.WebSocketException, OSError):
            self.eof = True
            return False
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            if len(data) >= 2:
                self.close_code = int.from_bytes(data[:2], "big")
            self.eof = True
            return False
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            self.messages.append((opcode, data))
            self.buffer += data
        return True

    def close(self) -> None:
        try:
            self.ws.close(timeout=0.5)
        except Exception:
            self.ws.shutdown()


def ws_url(broker: BrokerProcess, path: str = "/ws", scheme: str = "ws") -> str:
    """
    The URL of C{broker}'s WebSocket listener.
    """
    return f"{scheme}://127.0.0.1:{broker.ws_port}{path}"


@pytest.fixture
def raw_ws(broker):
    """
    Make L{WsClient}s to the module's broker's C{/ws}, or to a given URL
    (C{raw_ws(url=...)}), or another broker's (C{raw_ws(some_broker)});
    closed at teardown.
    """
    made = []

    def make(other: BrokerProcess | None = None, url: str | None = None, **options) -> WsClient:
        client = WsClient(url or ws_url(other or broker), **options)
        made.append(client)
        return client

    make.url = lambda other=None, path="/ws": ws_url(other or broker, path)
    yield make
    for client in made:
        client.close()


@pytest.fixture(name="free_port", scope="session")
def free_port_fixture():
    """
    L{free_port}, for test modules: a loopback port nothing listens on.
    """
    return free_port


@pytest.fixture
def self_signed_certificate(tmp_path) -> tuple[Path, Path]:
    """
    A key and a self-signed certificate for C{localhost} and C{127.0.0.1},
    written to C{tmp_path}: their paths.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path = tmp_path / "key.pem"
    cert_path = tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture
def send_all():
    """
    Send bodies to a destination with a stomp.py connection, all with the
    same C{headers}, and wait for the receipt of the last, so that the
    broker has them all.
    """

    def send(producer, destination: str, bodies: list, **headers) -> None:
        for body in bodies[:-1]:
            producer.send(destination, body, headers=dict(headers))
        receipt = f"sent-{uuid.uuid4().hex[:8]}"
        producer.send(destination, bodies[-1], headers=dict(headers), receipt=receipt)
        producer.collector.wait_for_receipt(receipt)

    return send


@pytest.fixture
def assert_queue_is_empty(connect, subscribe, send_all):
    """
    A check that a queue holds no messages: a new consumer gets only what
    C{producer} sends after it subscribed.
    """

    def check(producer, queue: str) -> None:
        later = connect()
        subscribe(later, queue)
        send_all(producer, queue, ["fresh"])
        assert later.collector.wait_for_bodies(1) == ["fresh"]

    return check


# Big enough that a few hundred fill the kernel's socket buffers quickly.
LARGE_BODY = "x" * 16 * 1024


@pytest.fixture
def publish_large():
    """
    Publish C{count} large messages, numbered in an C{n} header, with a
    stomp.py connection, and wait for the broker's receipt of the last.
    """

    def publish(producer, destination: str, count: int, timeout: float = 20.0) -> None:
        for n in range(count - 1):
            producer.send(destination, LARGE_BODY, headers={"n": str(n)})
        producer.send(destination, LARGE_BODY, headers={"n": str(count - 1)}, receipt="published")
        assert producer.collector.wait_for(lambda: "published" in producer.collector.receipts, timeout=timeout)

    return publish


@pytest.fixture
def publish_at_readers_pace():
    """
    Publish C{total} large messages, numbered in an C{n} header, to a topic
    in batches, waiting after each until C{reader} (a stomp.py connection)
    has it: only a subscriber that does not read falls behind.
    """

    def publish(producer, reader, topic: str, total: int = 400, batch: int = 25) -> None:
        for start in range(0, total, batch):
            for n in range(start, start + batch):
                producer.send(topic, LARGE_BODY, headers={"n": str(n)})
            assert reader.collector.wait_for(lambda: len(reader.collector.messages) == start + batch, timeout=10)

    return publish


def tcp_state(sock: socket.socket) -> int:
    """
    The kernel's TCP state of C{sock} (Linux C{TCP_INFO}): 1 is ESTABLISHED.
    """
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


@pytest.fixture
def assert_connection_dropped():
    """
    A check that the broker ends the TCP connection of C{sock} within
    C{timeout} seconds (Linux only: it reads C{TCP_INFO}).
    """

    def check(sock: socket.socket, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while tcp_state(sock) == 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tcp_state(sock) != 1, "the broker still holds the connection of a client that never reads"

    return check
