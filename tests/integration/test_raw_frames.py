"""
Bytes on the wire: malformed frames, limits, odd splits, line endings and
heart-beat EOLs, over a plain socket.
"""

import socket
import time
import uuid

import pytest


def subscribed(raw, version: str = "1.2"):
    """
    A raw client subscribed to a fresh topic: (client, topic).
    """
    topic = f"/topic/raw.{uuid.uuid4().hex[:8]}"
    client = raw()
    client.connect(version)
    client.send_frame("SUBSCRIBE", {"id": "0", "destination": topic, "receipt": "sub"})
    receipt = client.read_frame()
    assert receipt.command == "RECEIPT", receipt
    return client, topic


def read_messages(client, count: int, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    messages = []
    while len(messages) < count and time.monotonic() < deadline:
        frame = client.read_frame(max(deadline - time.monotonic(), 0.01))
        if frame is None:
            break
        assert frame.command == "MESSAGE", frame
        messages.append(frame)
    return messages


CONNECT_12 = b"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:guest\npasscode:guest\n\n\0"


@pytest.mark.parametrize(
    "frame, message",
    [
        (b"SEND\ndestination:/queue/a\nno colon here\n\nbody\0", "header"),
        (b"SEND\ndestination:/queue/a\ncontent-length:abc\n\nbody\0", "content-length"),
        (b"SEND\ndestination:/queue/a\ncontent-length:-1\n\nbody\0", "content-length"),
        (b"SEND\ndestination:/queue/a\ncontent-length:2\n\nbody\0", "NUL"),
        (b"SEND\ndestination:/queue/\xff\xfe\n\nbody\0", "UTF-8"),
        (b"SEND\ndestination:/queue/a\nx-tab:a\\tb\n\nbody\0", "escape"),
        (b"SEND\ndestination:/queue/a\nx-end:trailing\\\n\nbody\0", "escape"),
        (b"send\ndestination:/queue/a\n\nbody\0", "command"),
        (b"SEND MESSAGE\ndestination:/queue/a\n\nbody\0", "command"),
        (b"\x01\x02\x03\n\n\0", "command"),
    ],
    ids=[
        "no-colon",
        "content-length-text",
        "content-length-negative",
        "no-nul-after-body",
        "bad-utf8",
        "undefined-escape",
        "dangling-backslash",
        "lowercase-command",
        "space-in-command",
        "binary-command",
    ],
)
def test_malformed_frame(raw, expect_error, assert_serving, frame, message):
    client = raw()
    client.send(CONNECT_12)
    assert client.read_frame().command == "CONNECTED"
    client.send(frame)
    error = expect_error(client)
    assert message.lower() in (error.headers["message"] + error.body.decode()).lower(), error
    assert_serving()


@pytest.mark.parametrize("value", ["a\\tb", "a\\rb", "trailing\\"])
def test_undefined_escape_in_11(raw, expect_error, value):
    # A backslash and r is an escape of STOMP 1.2 only.
    client = raw()
    client.connect("1.1")
    client.send(f"SEND\ndestination:/queue/a\nx-odd:{value}\n\n\0".encode())
    expect_error(client, "escape")


def test_malformed_connect(raw, expect_error, assert_serving):
    client = raw()
    client.send(b"CONNECT\naccept-version\n\n\0")
    expect_error(client, "header")
    assert_serving()


def test_stomp_10_does_not_unescape(raw):
    client, topic = subscribed(raw, "1.0")
    client.send_frame("SEND", {"destination": topic, "x-path": r"C:\temp\new"}, b"")
    (message,) = read_messages(client, 1)
    assert message.headers["x-path"] == r"C:\temp\new"


def test_escaped_headers_round_trip_in_12(raw):
    client, topic = subscribed(raw)
    client.send(f"SEND\ndestination:{topic}\nx-odd:a\\cb\\nc\\\\d\\re\n\n\0".encode())
    (message,) = read_messages(client, 1)
    # Sent back escaped the same way.
    assert message.headers["x-odd"] == "a\\cb\\nc\\\\d\\re"


def test_frame_split_at_every_byte(raw):
    receiver, topic = subscribed(raw)
    sender = raw()
    sender.connect("1.2")
    frame = f"SEND\r\ndestination:{topic}\ncontent-length:5\nreceipt:split\n\nhe\0lo\0\n".encode()
    for n in range(len(frame)):
        sender.send(frame[n : n + 1])
        time.sleep(0.002)
    receipt = sender.read_frame()
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "split"
    (message,) = read_messages(receiver, 1)
    assert message.body == b"he\0lo"


def test_many_frames_in_one_send(raw):
    receiver, topic = subscribed(raw)
    sender = raw()
    sender.connect("1.2")
    frames = b"".join(
        f"SEND\ndestination:{topic}\n\nmessage {n}\0".encode() + (b"\n" if n % 2 else b"") for n in range(100)
    )
    sender.send(frames + b"DISCONNECT\nreceipt:done\n\n\0")
    receipt = sender.read_frame()
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "done"
    messages = read_messages(receiver, 100)
    assert [m.body for m in messages] == [f"message {n}".encode() for n in range(100)]


def test_connect_and_send_in_one_packet(raw):
    receiver, topic = subscribed(raw)
    sender = raw()
    sender.send(CONNECT_12 + f"SEND\ndestination:{topic}\nreceipt:r\n\nfirst\0".encode())
    assert sender.read_frame().command == "CONNECTED"
    assert sender.read_frame().command == "RECEIPT"
    (message,) = read_messages(receiver, 1)
    assert message.body == b"first"


def test_crlf_line_endings(raw):
    receiver, topic = subscribed(raw)
    sender = raw()
    sender.send(CONNECT_12.replace(b"\n", b"\r\n"))
    assert sender.read_frame().command == "CONNECTED"
    sender.send_frame("SEND", {"destination": topic, "receipt": "crlf", "x-crlf": "yes"}, b"windows", eol=b"\r\n")
    receipt = sender.read_frame()
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "crlf"
    (message,) = read_messages(receiver, 1)
    assert message.body == b"windows"
    assert message.headers["destination"] == topic
    assert message.headers["x-crlf"] == "yes"


def test_heart_beat_eols_between_frames(raw):
    receiver, topic = subscribed(raw)
    sender = raw()
    sender.send(b"\n\r\n" + CONNECT_12 + b"\n\n\r\n")
    assert sender.read_frame().command == "CONNECTED"
    for n in range(3):
        sender.send(b"\n")
        sender.send(f"SEND\ndestination:{topic}\n\n{n}\0".encode() + b"\r\n" * n)
        sender.send(b"\r")
        sender.send(b"\n")
    sender.send(b"\n\nDISCONNECT\nreceipt:end\n\n\0")
    receipt = sender.read_frame()
    assert receipt.command == "RECEIPT" and receipt.headers["receipt-id"] == "end"
    assert [m.body for m in read_messages(receiver, 3)] == [b"0", b"1", b"2"]


def test_binary_body_with_content_length(raw):
    receiver, topic = subscribed(raw)
    sender = raw()
    sender.connect("1.2")
    body = bytes(range(256)) * 4
    sender.send_frame("SEND", {"destination": topic, "content-length": str(len(body)), "receipt": "bin"}, body)
    assert sender.read_frame().command == "RECEIPT"
    (message,) = read_messages(receiver, 1)
    assert message.body == body
    assert message.headers["content-length"] == str(len(body))


# Limits, on a broker of their own with small ones.

LIMITS = """
max-subscriptions = 3
max-transactions = 2

[limits]
max-body-size = 1024
max-frame-size = 1500
max-headers = 8
max-header-line = 512
"""


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory, broker_process):
    running = broker_process(tmp_path_factory.mktemp("small-broker"), LIMITS)
    yield running
    running.stop()


def connected_to(raw, broker):
    client = raw(broker.port)
    assert client.connect("1.2").command == "CONNECTED"
    return client


def assert_small_broker_serves(raw, broker):
    receiver = raw(broker.port)
    receiver.connect("1.2")
    receiver.send_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/small", "receipt": "s"})
    assert receiver.read_frame().command == "RECEIPT"
    sender = connected_to(raw, broker)
    sender.send_frame("SEND", {"destination": "/topic/small"}, b"x" * 1024)
    message = receiver.read_frame()
    assert message.command == "MESSAGE" and message.body == b"x" * 1024


@pytest.mark.parametrize(
    "make_frame, message",
    [
        (lambda: b"SEND\ndestination:/queue/a\ncontent-length:1025\n\n" + b"x" * 1025 + b"\0", "body"),
        (lambda: b"SEND\ndestination:/queue/a\n\n" + b"x" * 1025 + b"\0", "body"),
        (lambda: b"SEND\ndestination:/queue/a\n\n" + b"x" * 5000, "body"),
        (lambda: b"SEND\ndestination:/queue/a\ncontent-length:999999999999\n\n", "body"),
        (
            lambda: b"SEND\ndestination:/queue/a\n" + b"".join(b"h%d:v\n" % n for n in range(9)) + b"\n\0",
            "too many headers",
        ),
        (
            lambda: b"SEND\ndestination:/queue/a\n" + b"".join(b"h%d:v\n" % n for n in range(200)),
            "header",
        ),
        (lambda: b"SEND\ndestination:/queue/a\nx-long:" + b"y" * 600 + b"\n\n\0", "too long"),
        (lambda: b"SEND\ndestination:/queue/a\nx-long:" + b"y" * 600, "too long"),
        (lambda: b"S" * 600, "too long"),
        (
            lambda: b"SEND\ndestination:/queue/a\nx-a:" + b"a" * 500 + b"\nx-b:" + b"b" * 500
            + b"\n\n" + b"z" * 600 + b"\0",
            "frame too large",
        ),
        (
            lambda: b"SEND\ndestination:/queue/a\nx-a:" + b"a" * 500 + b"\nx-b:" + b"b" * 500
            + b"\ncontent-length:600\n\n" + b"z" * 600 + b"\0",
            "frame too large",
        ),
    ],
    ids=[
        "body-content-length",
        "body-nul",
        "body-never-ends",
        "huge-content-length",
        "too-many-headers",
        "headers-never-end",
        "long-header-line",
        "long-header-line-incomplete",
        "long-command",
        "frame-nul",
        "frame-content-length",
    ],
)
def test_limit_exceeded(raw, expect_error, small_broker, make_frame, message):
    client = connected_to(raw, small_broker)
    client.send(make_frame())
    error = expect_error(client)
    assert message in error.headers["message"], error
    assert_small_broker_serves(raw, small_broker)


def test_limit_exceeded_before_connect(raw, expect_error, small_broker):
    client = raw(small_broker.port)
    client.send(b"CONNECT\nx-long:" + b"y" * 5000)
    # "header line too long" or "header block too large": both are right.
    expect_error(client, "header")
    assert_small_broker_serves(raw, small_broker)


def test_within_limits(raw, small_broker):
    assert_small_broker_serves(raw, small_broker)
    client = connected_to(raw, small_broker)
    headers = {f"h{n}": "v" for n in range(6)}
    client.send_frame("SEND", {"destination": "/queue/limits", "receipt": "ok", **headers}, b"b" * 1000)
    assert client.read_frame().command == "RECEIPT"


def test_stomp_py_sees_the_limit(connect, small_broker):
    conn = connect(port=small_broker.port)
    conn.send("/queue/too-big", "x" * 2000)
    assert conn.collector.wait_for(lambda: conn.collector.errors)
    assert "body exceeds 1024 bytes" in conn.collector.errors[0].headers["message"]
    assert conn.collector.wait_for(lambda: conn.collector.disconnected)


def test_too_many_subscriptions(raw, expect_error, small_broker):
    client = connected_to(raw, small_broker)
    for n in range(3):
        client.send_frame("SUBSCRIBE", {"id": str(n), "destination": f"/topic/many.{n}", "receipt": str(n)})
        assert client.read_frame().command == "RECEIPT"
    client.send_frame("SUBSCRIBE", {"id": "3", "destination": "/topic/many.3"})
    expect_error(client, "too many subscriptions")
    assert_small_broker_serves(raw, small_broker)


def test_too_many_transactions(raw, expect_error, small_broker):
    client = connected_to(raw, small_broker)
    for name in ("t1", "t2"):
        client.send_frame("BEGIN", {"transaction": name, "receipt": name})
        assert client.read_frame().command == "RECEIPT"
    client.send_frame("BEGIN", {"transaction": "t3"})
    expect_error(client, "too many transactions")
    assert_small_broker_serves(raw, small_broker)


def test_large_bodies_to_a_subscriber_that_reads_late_arrive_exact(raw, broker):
    """
    A subscriber with a small receive buffer that reads only after several
    large messages were sent to it: the socket takes part of the first,
    the rest of it and the others wait in the broker, and each arrives
    whole and in order, with small frames sent between them.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", broker.port))
    late = raw(broker.port, sock)
    late.connect("1.2")
    topic = f"/topic/raw.{uuid.uuid4().hex[:8]}"
    late.send_frame("SUBSCRIBE", {"id": "0", "destination": topic, "receipt": "sub"})
    assert late.read_frame().command == "RECEIPT"
    bodies = [bytes([n]) * (1 << 20) + bytes(range(256)) for n in range(1, 4)]
    producer = raw()
    producer.connect("1.2")
    for n, body in enumerate(bodies):
        producer.send_frame("SEND", {"destination": topic, "content-length": str(len(body))}, body)
        producer.send_frame("SEND", {"destination": topic, "receipt": str(n)}, b"small %d" % n)
        assert producer.read_frame(10).headers["receipt-id"] == str(n)
    received = [frame.body for frame in read_messages(late, 6, timeout=20)]
    assert received == [item for n, body in enumerate(bodies) for item in (body, b"small %d" % n)]


def test_large_bodies_back_to_back_arrive_exact(raw):
    """
    Large bodies, with content-length and without, written in one go
    with small frames between them: each arrives whole and in order, to
    every subscriber.
    """
    first, topic = subscribed(raw)
    second = raw()
    second.connect("1.2")
    second.send_frame("SUBSCRIBE", {"id": "0", "destination": topic, "receipt": "sub"})
    assert second.read_frame().command == "RECEIPT"
    sized = bytes(range(256)) * 6000 + b"\x00tail"
    text = b"no NUL in here " * 20000
    producer = raw()
    producer.connect("1.2")
    stream = b"".join(
        [
            b"SEND\ndestination:%s\ncontent-length:%d\n\n%s\x00" % (topic.encode(), len(sized), sized),
            b"SEND\ndestination:%s\n\nsmall\x00\n" % topic.encode(),
            b"SEND\ndestination:%s\n\n%s\x00" % (topic.encode(), text),
            b"SEND\ndestination:%s\ncontent-length:%d\nreceipt:r\n\n%s\x00" % (topic.encode(), len(sized), sized[::-1]),
        ]
    )
    producer.send(stream)
    receipt = producer.read_frame(10)
    assert (receipt.command, receipt.headers["receipt-id"]) == ("RECEIPT", "r")
    for subscriber in (first, second):
        bodies = [frame.body for frame in read_messages(subscriber, 4, timeout=10)]
        assert bodies == [sized, b"small", text, sized[::-1]]
