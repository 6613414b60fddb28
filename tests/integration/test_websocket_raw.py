"""
STOMP over WebSocket at the message level, with websocket-client: text and
binary messages, frames split across messages, heart-beats, subprotocol
negotiation, bodies that are not UTF-8, misuse, allowed origins, wss://,
the built-in page and a consumer that stops reading.
"""

import re
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid

import pytest
import websocket

TEXT = websocket.ABNF.OPCODE_TEXT
BINARY = websocket.ABNF.OPCODE_BINARY

# Small enough to break with a few kilobytes. The WebSocket message limit is
# max-frame-size too.
LIMITS = """
[limits]
max-frame-size = 4096
max-body-size = 2048
max-headers = 8
max-header-line = 256
max-buffered = 16384
"""


def topic_name() -> str:
    return f"/topic/ws.{uuid.uuid4().hex[:8]}"


def connected(raw_ws, *args, version: str = "1.2", **options):
    """
    A L{WsClient} that has sent CONNECT and got CONNECTED.
    """
    client = raw_ws(*args, **options)
    frame = client.connect(version)
    assert frame.command == "CONNECTED", frame
    return client


def ws_subscribe(client, destination: str, id: str = "0", **headers) -> None:
    receipt = f"sub-{id}"
    client.send_frame("SUBSCRIBE", {"id": id, "destination": destination, "receipt": receipt, **headers})
    frame = client.read_frame()
    assert frame is not None and frame.command == "RECEIPT", frame
    assert frame.headers["receipt-id"] == receipt


def read_messages(client, count: int, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    frames = []
    while len(frames) < count and time.monotonic() < deadline:
        frame = client.read_frame(max(deadline - time.monotonic(), 0.01))
        if frame is None:
            break
        frames.append(frame)
    assert [f.command for f in frames] == ["MESSAGE"] * count, frames
    return frames


def assert_still_serving(broker, connect, raw_ws, bystander=None) -> None:
    """
    The broker still serves: a connection made before the trouble
    (C{bystander}, subscribed to its topic) and a fresh WebSocket one get
    what a TCP client publishes.
    """
    fresh = connected(raw_ws, broker)
    topic = topic_name()
    ws_subscribe(fresh, topic)
    publisher = connect(port=broker.port)
    publisher.send(topic, "still here", receipt="sent")
    assert publisher.collector.wait_for(lambda: "sent" in publisher.collector.receipts)
    assert read_messages(fresh, 1)[0].body == b"still here"
    if bystander is not None:
        client, its_topic = bystander
        publisher.send(its_topic, "to the bystander")
        assert read_messages(client, 1)[0].body == b"to the bystander"
    publisher.disconnect()


@pytest.fixture(scope="module")
def limited(tmp_path_factory, broker_process):
    """
    A broker with small frame limits.
    """
    running = broker_process(tmp_path_factory.mktemp("limited"), LIMITS)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def restricted(tmp_path_factory, broker_process):
    """
    A broker that accepts pages from one origin only and serves no page.
    """
    running = broker_process(
        tmp_path_factory.mktemp("restricted"),
        '[websocket]\nallowed-origins = ["http://good.example"]\npage = false\n',
    )
    yield running
    running.stop()


# Message kinds and splits


def test_text_and_binary_messages_both_carry_frames(raw_ws):
    client = connected(raw_ws)
    topic = topic_name()
    client.binary = True
    ws_subscribe(client, topic)
    client.send_frame("SEND", {"destination": topic}, b"sent as binary")
    client.binary = False
    client.send_frame("SEND", {"destination": topic}, b"sent as text")
    frames = read_messages(client, 2)
    assert [f.body for f in frames] == [b"sent as binary", b"sent as text"]
    # ASCII (and any UTF-8) goes out as text, which browsers read as strings.
    assert {opcode for opcode, _ in client.messages} == {TEXT}


def test_frame_split_across_many_messages(raw_ws):
    client = raw_ws()
    connect = b"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:guest\npasscode:guest\n\n\0"
    for piece in (connect[:7], connect[7:30], connect[30:]):
        client.send(piece)
    frame = client.read_frame()
    assert frame.command == "CONNECTED", frame
    topic = topic_name()
    ws_subscribe(client, topic)
    body = b"split \0 body"
    send = b"SEND\ndestination:%s\ncontent-length:%d\n\n%s\0" % (topic.encode(), len(body), body)
    # One byte a message: every split point, including inside the EOLs,
    # the content-length body (with its NUL) and before the final NUL.
    for i in range(len(send)):
        client.send(send[i : i + 1], binary=bool(i % 2))
    (message,) = read_messages(client, 1)
    assert message.body == body
    assert message.headers["destination"] == topic


def test_heart_beat_eols_in_messages_of_their_own(raw_ws):
    # The module's broker has heart-beat floors of 100 ms and WebSocket
    # clients the default grace of 7: a client beating every 200 ms is
    # dropped after about 1.4 s of silence.
    beating = raw_ws()
    assert beating.connect("1.2", heart_beat="200,200").command == "CONNECTED"
    quiet = raw_ws()
    assert quiet.connect("1.2", heart_beat="200,0").command == "CONNECTED"
    deadline = time.monotonic() + 1.5
    sent = 0
    while time.monotonic() < deadline and sent < 20:
        beating.send(b"\n" if sent % 2 else b"\r\n")
        sent += 1
        assert beating.read_frame(timeout=0.15) is None
    assert not beating.eof
    # The broker's beats are messages of their own, one EOL each.
    assert beating.beats >= 4, beating.messages
    assert all(payload == b"\n" for _, payload in beating.messages[1:]), beating.messages
    topic = topic_name()
    ws_subscribe(beating, topic)
    beating.send_frame("SEND", {"destination": topic}, b"after the beats")
    assert read_messages(beating, 1)[0].body == b"after the beats"
    # Without the beats the same connection would have been dropped.
    frame = quiet.read_frame(timeout=3)
    assert frame is not None and frame.command == "ERROR", frame
    assert frame.headers["message"] == "heart-beat timeout"
    assert quiet.is_closed()


def test_one_message_may_end_with_part_of_the_next_frame(raw_ws):
    client = connected(raw_ws)
    topic = topic_name()
    ws_subscribe(client, topic)
    first = b"SEND\ndestination:%s\n\none\0" % topic.encode()
    second = b"SEND\ndestination:%s\n\ntwo\0" % topic.encode()
    client.send(first + second[:9])
    client.send(second[9:] + b"\n")
    assert [f.body for f in read_messages(client, 2)] == [b"one", b"two"]


# Subprotocols


def test_no_subprotocol_takes_the_version_from_accept_version(raw_ws):
    client = raw_ws(subprotocols=None)
    assert client.subprotocol is None
    frame = client.connect("1.0,1.1")
    assert frame.command == "CONNECTED", frame
    assert frame.headers["version"] == "1.1"
    topic = topic_name()
    ws_subscribe(client, topic)
    client.send_frame("SEND", {"destination": topic}, b"no subprotocol")
    assert read_messages(client, 1)[0].body == b"no subprotocol"


@pytest.mark.parametrize(
    "offered, chosen",
    [
        (["stomp"], "stomp"),
        (["mqtt", "stomp"], "stomp"),
        (["v10.stomp", "v11.stomp", "v12.stomp"], "v12.stomp"),
        (["mqtt", "v11.stomp", "v10.stomp"], "v11.stomp"),
    ],
)
def test_stomp_subprotocols_are_accepted(raw_ws, offered, chosen):
    client = raw_ws(subprotocols=offered)
    assert client.subprotocol == chosen
    frame = client.connect("1.1" if chosen == "v11.stomp" else "1.2")
    assert frame.command == "CONNECTED", frame


def test_only_other_subprotocols_are_refused(raw_ws, broker, connect, assert_serving):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        raw_ws(subprotocols=["mqtt", "wamp.2.json"])
    assert 400 <= refused.value.status_code < 500
    assert_serving()


# Bodies


def test_body_that_is_not_utf8_arrives_byte_exact_as_binary(raw_ws, raw, broker):
    topic = topic_name()
    ws_subscriber = connected(raw_ws)
    ws_subscribe(ws_subscriber, topic)
    tcp_subscriber = raw()
    assert tcp_subscriber.connect().command == "CONNECTED"
    ws_subscribe(tcp_subscriber, topic)
    publisher = connected(raw_ws)
    # A text message must be UTF-8: this one goes as binary.
    publisher.binary = True
    body = bytes(range(256)) * 3 + b"\0\xff\xfe"
    publisher.send_frame(
        "SEND",
        {"destination": topic, "content-length": str(len(body)), "content-type": "application/octet-stream"},
        body,
    )
    publisher.binary = False
    utf8 = "näïve ☃".encode("utf-8")
    publisher.send_frame("SEND", {"destination": topic, "content-length": str(len(utf8))}, utf8)
    binary, text = read_messages(ws_subscriber, 2)
    assert binary.body == body
    assert binary.headers["content-type"] == "application/octet-stream"
    assert text.body == utf8
    # A text message must be UTF-8, so the first went as binary; the
    # second is valid UTF-8 and goes as text.
    assert [opcode for opcode, _ in ws_subscriber.messages[-2:]] == [BINARY, TEXT]
    assert [f.body for f in read_messages(tcp_subscriber, 2)] == [body, utf8]


@pytest.mark.parametrize("size", [10, 125, 126, 65535, 65536, 300_000])
def test_every_frame_length_arrives_whole_in_one_message(raw_ws, size):
    """
    Frames of every payload length encoding (7, 16 and 64 bits), bodies
    large enough to be written as parts among them, text and binary.
    """
    topic = topic_name()
    subscriber = connected(raw_ws)
    ws_subscribe(subscriber, topic)
    publisher = connected(raw_ws)
    text = (b"abc\xc3\xa9" * size)[:size]
    if text[-1:] == b"\xc3":
        text = text[:-1] + b"x"
    binary = (bytes(range(256)) * (size // 256 + 1))[:size]
    for body in (text, binary):
        publisher.binary = True
        publisher.send_frame("SEND", {"destination": topic, "content-length": str(len(body))}, body)
    frames = read_messages(subscriber, 2, timeout=10)
    assert [f.body for f in frames] == [text, binary]
    # One WebSocket message per frame: text for UTF-8, binary for the rest.
    opcodes = [opcode for opcode, _ in subscriber.messages[-2:]]
    assert opcodes == [TEXT, BINARY if b"\x80" in binary else TEXT]


# Misuse


def bystander(raw_ws, broker):
    client = connected(raw_ws, broker)
    topic = topic_name()
    ws_subscribe(client, topic)
    return client, topic


@pytest.mark.parametrize(
    "misuse, message",
    [
        ("body-too-large", "body"),
        ("body-too-large-no-length", "body"),
        ("too-many-headers", "headers"),
        ("header-line-too-long", "line"),
        ("garbage", None),
        ("unknown-command", "unknown command"),
    ],
)
def test_frame_breaking_the_rules_gets_error_and_close(raw_ws, limited, connect, misuse, message):
    watching = bystander(raw_ws, limited)
    client = connected(raw_ws, limited)
    queue = f"/queue/misuse.{uuid.uuid4().hex[:8]}"
    if misuse == "body-too-large":
        client.send_frame("SEND", {"destination": queue, "content-length": "3000"}, b"x" * 3000)
    elif misuse == "body-too-large-no-length":
        client.send_frame("SEND", {"destination": queue}, b"x" * 3800)
    elif misuse == "too-many-headers":
        client.send_frame("SEND", {"destination": queue, **{f"h{i}": "v" for i in range(12)}}, b"x")
    elif misuse == "header-line-too-long":
        client.send_frame("SEND", {"destination": queue, "long": "v" * 1000}, b"x")
    elif misuse == "garbage":
        client.send(b"\x00\xff\xfe\x80garbage\x01\x02\n\n\0", binary=True)
    else:
        client.send_frame("HELLO", {"destination": queue}, b"x")
    frame = client.read_frame()
    assert frame is not None and frame.command == "ERROR", frame
    assert frame.headers.get("message") and frame.body
    if message is not None:
        assert message in frame.headers["message"], frame
    assert client.is_closed()
    # The broker ends the WebSocket with a close frame, not a dropped socket.
    assert client.close_code == 1000
    assert_still_serving(limited, connect, raw_ws, watching)


def test_message_larger_than_max_frame_size_is_closed(raw_ws, limited, connect):
    watching = bystander(raw_ws, limited)
    client = connected(raw_ws, limited)
    topic = topic_name()
    ws_subscribe(client, topic)
    client.send(b"SEND\ndestination:" + topic.encode() + b"\n\n" + b"x" * 8000 + b"\0")
    assert client.read_frame() is None
    assert client.is_closed()
    assert client.close_code == 1009  # message too big
    assert_still_serving(limited, connect, raw_ws, watching)


def test_text_message_that_is_not_utf8_is_closed(raw_ws, limited, connect):
    watching = bystander(raw_ws, limited)
    client = connected(raw_ws, limited)
    topic = topic_name()
    ws_subscribe(client, topic)
    client.send(b"SEND\ndestination:" + topic.encode() + b"\n\n\xff\xfe\0")
    assert client.read_frame() is None
    assert client.is_closed()
    assert client.close_code == 1007  # invalid payload data
    assert_still_serving(limited, connect, raw_ws, watching)


@pytest.mark.parametrize("how", ["close-frame", "drop-socket"])
def test_closing_mid_frame_publishes_nothing(raw_ws, limited, connect, how):
    watching = bystander(raw_ws, limited)
    queue = f"/queue/half.{uuid.uuid4().hex[:8]}"
    client = connected(raw_ws, limited)
    client.send_frame("SEND", {"destination": queue}, b"whole")
    client.send(b"SEND\ndestination:" + queue.encode() + b"\ncontent-length:10\n\nhalf")
    if how == "close-frame":
        client.ws.close(timeout=2)
    else:
        client.ws.sock.shutdown(socket.SHUT_RDWR)
        client.ws.sock.close()
    consumer = connected(raw_ws, limited)
    # No receipt to wait for: the queued message may come first.
    consumer.send_frame("SUBSCRIBE", {"id": "0", "destination": queue})
    assert read_messages(consumer, 1)[0].body == b"whole"
    # Nothing else: the half frame was dropped with its connection.
    consumer.send_frame("SEND", {"destination": queue}, b"next")
    assert read_messages(consumer, 1)[0].body == b"next"
    assert_still_serving(limited, connect, raw_ws, watching)


# Origins


def test_origin_not_allowed_is_refused(raw_ws, restricted):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        raw_ws(restricted, origin="http://evil.example")
    assert refused.value.status_code == 403
    # Nor does a look-alike pass.
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        raw_ws(restricted, origin="http://good.example.evil.example")
    assert refused.value.status_code == 403


def test_allowed_origin_connects(raw_ws, restricted):
    client = connected(raw_ws, restricted, origin="http://good.example")
    topic = topic_name()
    ws_subscribe(client, topic)
    client.send_frame("SEND", {"destination": topic}, b"from a good page")
    assert read_messages(client, 1)[0].body == b"from a good page"


# wss://


def test_wss(tmp_path, broker_process, raw_ws, connect, self_signed_certificate, free_port):
    key, cert = self_signed_certificate
    port = free_port()
    running = broker_process(
        tmp_path, "", ("--listen-ws", f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1")
    )
    try:
        url = f"wss://127.0.0.1:{port}/ws"
        client = raw_ws(url=url, sslopt={"cert_reqs": ssl.CERT_NONE, "check_hostname": False})
        assert isinstance(client.ws.sock, ssl.SSLSocket)
        assert client.subprotocol == "v12.stomp"
        assert client.connect().command == "CONNECTED"
        topic = topic_name()
        ws_subscribe(client, topic)
        tcp = connect(port=running.port)
        tcp.send(topic, "over tls", headers={"x-via": "tcp"})
        (message,) = read_messages(client, 1)
        assert message.body == b"over tls"
        assert message.headers["x-via"] == "tcp"
        client.close()
        tcp.disconnect()
    finally:
        running.stop()


# The built-in page


def get(url: str):
    """
    (status, content type, body) of a GET.
    """
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("content-type", ""), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def test_page_and_bundled_client_are_served(broker):
    base = f"http://127.0.0.1:{broker.ws_port}"
    status, content_type, html = get(base + "/")
    assert status == 200
    assert content_type.startswith("text/html")
    assert b'<script src="stomp.umd.min.js">' in html
    # Everything comes from the broker: no CDN, no other host.
    links = re.findall(rb'(?:src|href)\s*=\s*["\']([^"\']*)', html)
    assert links, html
    for link in links:
        assert link.startswith(b"data:") or (b":" not in link and not link.startswith(b"//")), link
    status, content_type, script = get(base + "/stomp.umd.min.js")
    assert status == 200
    assert "javascript" in content_type
    assert b"StompJs" in script and len(script) > 10_000
    for asset in ("/page.js", "/page.css"):
        assert get(base + asset)[0] == 200, asset


def test_no_page_when_disabled_but_websocket_still_upgrades(restricted, raw_ws):
    base = f"http://127.0.0.1:{restricted.ws_port}"
    assert get(base + "/")[0] == 404
    assert get(base + "/stomp.umd.min.js")[0] == 404
    client = connected(raw_ws, restricted, origin="http://good.example")
    assert client.subprotocol == "v12.stomp"


# Flow control


def test_consumer_that_stops_reading_does_not_hold_up_the_others(raw_ws, connect, broker, publish_large):
    queue = f"/queue/ws-stalled.{uuid.uuid4().hex[:8]}"
    # A small receive buffer, so that the stalled connection backs up soon.
    stalled = connected(raw_ws, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
    ws_subscribe(stalled, queue, id="stalled")
    reader = connected(raw_ws)
    ws_subscribe(reader, queue, id="reader")
    producer = connect()
    total = 400
    publish_large(producer, queue, total)
    # The reader gets everything the stalled one did not take before its
    # connection backed up, while the stalled one still reads nothing.
    read = []
    deadline = time.monotonic() + 20
    while len(read) < total and time.monotonic() < deadline:
        frame = reader.read_frame(timeout=0.5)
        if frame is None:
            break
        assert frame.command == "MESSAGE", frame
        read.append(int(frame.headers["n"]))
    assert read == sorted(read)
    # More than its round-robin half: the stalled one got only what its
    # connection's buffers took.
    assert len(read) > total // 2, len(read)
    held = []
    deadline = time.monotonic() + 20
    while len(read) + len(held) < total and time.monotonic() < deadline:
        frame = stalled.read_frame(timeout=1.0)
        if frame is None:
            break
        held.append(int(frame.headers["n"]))
    # Nothing is lost or duplicated.
    assert sorted(read + held) == list(range(total))


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux TCP_INFO")
def test_topic_subscriber_that_never_reads_is_cut_off(
    broker_process, tmp_path, raw_ws, connect, subscribe, publish_at_readers_pace, assert_connection_dropped
):
    running = broker_process(tmp_path, "close-timeout = 1.0\n[limits]\nmax-buffered = 262144\n")
    try:
        topic = topic_name()
        stalled = connected(raw_ws, running, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
        ws_subscribe(stalled, topic)
        reader = connect(port=running.port)
        subscribe(reader, topic, id="reader")
        producer = connect(port=running.port)
        total = 400
        # Only the stalled one falls behind by more than max-buffered.
        publish_at_readers_pace(producer, reader, topic, total)
        assert [int(m.headers["n"]) for m in reader.collector.messages] == list(range(total))
        assert "slow consumer" in running.log
        # It gets no chance to hold its connection and buffers for ever.
        assert_connection_dropped(stalled.sock, timeout=5)
        reader.disconnect()
        producer.disconnect()
    finally:
        running.stop()
