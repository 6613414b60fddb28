"""
Topics through a real stomp.py client: fan-out, wildcards, the headers a
MESSAGE carries, receipts, and bodies and header values that must arrive
exactly as they were sent.
"""

import time

import pytest


def test_topic_reaches_every_subscriber_in_order(connect, unique):
    topic = unique("/topic/news.")
    subscribers = [connect() for _ in range(3)]
    for n, conn in enumerate(subscribers):
        conn.subscribe(topic, id=f"s{n}", receipt=f"sub{n}")
        assert conn.collector.wait_for(lambda: f"sub{n}" in conn.collector.receipts)
    producer = connect()
    for i in range(20):
        producer.send(topic, f"m{i}")
    for conn in subscribers:
        assert conn.collector.wait_for(lambda: len(conn.collector.messages) == 20)
        assert [m.body for m in conn.collector.messages] == [f"m{i}" for i in range(20)]
        assert all(m.headers["destination"] == topic for m in conn.collector.messages)


def test_only_messages_sent_while_subscribed_arrive(connect, subscribe, unique):
    topic = unique("/topic/late.")
    producer = connect()
    producer.send(topic, "before", receipt="before")
    assert producer.collector.wait_for(lambda: "before" in producer.collector.receipts)
    consumer = connect()
    subscribe(consumer, topic)
    producer.send(topic, "after", receipt="after")
    assert producer.collector.wait_for(lambda: "after" in producer.collector.receipts)
    assert consumer.collector.wait_for_bodies(1) == ["after"]


def test_wildcards(connect, subscribe, unique):
    """
    C{*} is exactly one segment; C{#} and ActiveMQ's C{>} are any number of
    segments, zero included, so C{a.#} matches C{a} itself.
    """
    root = unique("/topic/wild")
    patterns = {
        "star": f"{root}.*",
        "hash": f"{root}.#",
        "gt": f"{root}.>",
        "middle-star": f"{root}.*.end",
        "middle-hash": f"{root}.#.end",
        "slash-star": f"{root}/*",
    }
    consumers = {}
    for name, pattern in patterns.items():
        consumers[name] = connect()
        subscribe(consumers[name], pattern, id=name)
    sent = [
        root,
        f"{root}.a",
        f"{root}.a.b",
        f"{root}.end",
        f"{root}.a.end",
        f"{root}.a.b.end",
        f"{root}/a",
        f"{root}x",
        f"{root}x.a",
    ]
    producer = connect()
    for destination in sent:
        producer.send(destination, destination)
    producer.send(f"{root}.done", f"{root}.done", receipt="done")
    assert producer.collector.wait_for(lambda: "done" in producer.collector.receipts)
    expected = {
        "star": [f"{root}.a", f"{root}.end", f"{root}.done"],
        "hash": [root, f"{root}.a", f"{root}.a.b", f"{root}.end", f"{root}.a.end", f"{root}.a.b.end", f"{root}.done"],
        "middle-star": [f"{root}.a.end"],
        "middle-hash": [f"{root}.end", f"{root}.a.end", f"{root}.a.b.end"],
        "slash-star": [f"{root}/a"],
    }
    expected["gt"] = expected["hash"]
    for name, conn in consumers.items():
        assert conn.collector.wait_for(lambda: len(conn.collector.messages) >= len(expected[name])), name
    time.sleep(0.1)
    for name, conn in consumers.items():
        assert conn.collector.bodies() == expected[name], name
        # The destination is the name it was sent to, not the pattern.
        assert [m.headers["destination"] for m in conn.collector.messages] == expected[name]
        assert {m.headers["subscription"] for m in conn.collector.messages} == {name}


def test_dotted_and_slashed_names_are_distinct_topics(connect, subscribe, unique):
    root = unique("/topic/greetings")
    slashed, dotted = f"{root}/1", f"{root}.1"
    by_slash, by_dot = connect(), connect()
    subscribe(by_slash, slashed)
    subscribe(by_dot, dotted)
    producer = connect()
    producer.send(slashed, "to slash")
    producer.send(dotted, "to dot")
    assert by_slash.collector.wait_for(lambda: by_slash.collector.messages)
    assert by_dot.collector.wait_for(lambda: by_dot.collector.messages)
    time.sleep(0.1)
    assert [(m.headers["destination"], m.body) for m in by_slash.collector.messages] == [(slashed, "to slash")]
    assert [(m.headers["destination"], m.body) for m in by_dot.collector.messages] == [(dotted, "to dot")]


@pytest.mark.parametrize(
    "version, ack, has_ack_header",
    [
        ("1.2", "auto", False),
        ("1.2", "client", True),
        ("1.2", "client-individual", True),
        ("1.1", "client", False),
        ("1.0", "client", False),
    ],
)
def test_message_headers(connect, subscribe, unique, version, ack, has_ack_header):
    """
    The producer's headers and content type pass through; the broker adds
    message-id, subscription, destination and content-length, and ack only
    for STOMP 1.2 subscriptions that acknowledge; the SEND's receipt stays
    with the SEND.
    """
    topic = unique("/topic/headers.")
    consumer = connect(version=version)
    subscribe(consumer, topic, id="sub-1", ack=ack)
    producer = connect()
    body = "caf\u00e9 \u2615"
    producer.send(
        topic,
        body,
        content_type="text/plain;charset=utf-8",
        headers={"x-order": "42", "x-empty": "", "persistent": "true"},
        receipt="sent",
    )
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    (message,) = consumer.collector.messages
    headers = message.headers
    assert message.body == body
    assert headers["destination"] == topic
    assert headers["subscription"] == "sub-1"
    assert headers["message-id"]
    assert headers["content-length"] == str(len(body.encode("utf-8")))
    assert headers["content-type"] == "text/plain;charset=utf-8"
    assert headers["x-order"] == "42"
    assert headers["x-empty"] == ""
    assert headers["persistent"] == "true"
    assert "receipt" not in headers
    assert "redelivered" not in headers
    if has_ack_header:
        assert headers["ack"]
    else:
        assert "ack" not in headers


def test_message_ids_are_unique(connect, subscribe, unique):
    topic = unique("/topic/ids.")
    consumer = connect()
    subscribe(consumer, topic)
    producer = connect()
    for i in range(50):
        producer.send(topic, str(i))
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 50)
    assert len({m.headers["message-id"] for m in consumer.collector.messages}) == 50


def test_unsubscribe_stops_delivery(connect, subscribe, unique):
    topic = unique("/topic/unsub.")
    consumer = connect()
    subscribe(consumer, topic, id="first")
    subscribe(consumer, topic, id="second")
    producer = connect()
    producer.send(topic, "both")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 2)
    consumer.unsubscribe(id="first", receipt="unsubscribed")
    assert consumer.collector.wait_for(lambda: "unsubscribed" in consumer.collector.receipts)
    producer.send(topic, "one", receipt="sent")
    assert producer.collector.wait_for(lambda: "sent" in producer.collector.receipts)
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 3)
    time.sleep(0.1)
    assert [(m.headers["subscription"], m.body) for m in consumer.collector.messages][2:] == [("second", "one")]


def test_receipts_for_send_subscribe_and_unsubscribe(connect, unique):
    topic = unique("/topic/receipts.")
    conn = connect()
    conn.subscribe(topic, id="s", receipt="r-subscribe")
    conn.send(topic, "x", receipt="r-send")
    conn.unsubscribe(id="s", receipt="r-unsubscribe")
    assert conn.collector.wait_for(lambda: len(conn.collector.receipts) == 3)
    # Frames are handled in order, so their receipts come in order.
    assert conn.collector.receipts == ["r-subscribe", "r-send", "r-unsubscribe"]
    assert [m.body for m in conn.collector.messages] == ["x"]


def test_disconnect_receipt_then_close(raw):
    client = raw()
    assert client.connect().command == "CONNECTED"
    client.send_frame("DISCONNECT", {"receipt": "bye"})
    frame = client.read_frame()
    assert frame is not None and frame.command == "RECEIPT"
    assert frame.headers["receipt-id"] == "bye"
    assert client.is_closed()
    assert client.buffer.strip(b"\r\n") == b""


@pytest.mark.parametrize("size", [256, 4 * 1024 * 1024])
def test_binary_body_arrives_byte_exact(connect, subscribe, unique, size):
    """
    Bodies with NUL bytes travel with a content-length; a 4 MiB body too.
    """
    topic = unique("/topic/binary.")
    # Every byte value, NULs at both ends and in the middle.
    body = (b"\x00" + bytes(range(256)) * (size // 256 + 1))[:size - 1] + b"\x00"
    assert len(body) == size
    consumer = connect(auto_decode=False)
    subscribe(consumer, topic)
    producer = connect(auto_decode=False)
    producer.send(topic, body, content_type="application/octet-stream", receipt="sent")
    assert producer.collector.wait_for(lambda: "sent" in producer.collector.receipts, timeout=10)
    assert consumer.collector.wait_for(lambda: consumer.collector.messages, timeout=10)
    (message,) = consumer.collector.messages
    assert message.headers["content-length"] == str(size)
    assert message.body == body


@pytest.mark.parametrize(
    "sender, receiver, value",
    [
        ("1.1", "1.2", "a:b\nc\\d"),
        ("1.2", "1.1", "a:b\nc\\d"),
        ("1.2", "1.2", "a:b\nc\\d\re"),
        ("1.1", "1.1", "\\:\n\\n"),
    ],
)
def test_header_escaping_round_trips(connect, subscribe, unique, sender, receiver, value):
    topic = unique("/topic/escapes:")
    consumer = connect(version=receiver)
    subscribe(consumer, topic, id="sub:1")
    producer = connect(version=sender)
    producer.send(topic, "x", headers={"x-value": value})
    assert consumer.collector.wait_for(lambda: consumer.collector.messages)
    (message,) = consumer.collector.messages
    assert message.headers["x-value"] == value
    assert message.headers["destination"] == topic
    assert message.headers["subscription"] == "sub:1"


def test_topic_publishing_from_several_producers_keeps_each_order(connect, subscribe, unique):
    topic = unique("/topic/many.")
    consumer = connect()
    subscribe(consumer, topic)
    producers = [connect() for _ in range(3)]
    for i in range(30):
        for n, producer in enumerate(producers):
            producer.send(topic, f"{n}:{i}")
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 90)
    for n in range(3):
        mine = [m.body for m in consumer.collector.messages if m.body.startswith(f"{n}:")]
        assert mine == [f"{n}:{i}" for i in range(30)]


@pytest.mark.parametrize(
    "version, kept, left_out",
    [
        ("1.0", {"x-plain": "ok", "x-colon": "a:b"}, ["x-newline", "x:name", "x-cr"]),
        ("1.1", {"x-plain": "ok", "x-colon": "a\\cb", "x-newline": "a\\n\\nforged\\c1", "x\\cname": "n"}, ["x-cr"]),
    ],
)
def test_headers_an_older_version_cannot_carry_are_left_out(raw, unique, version, kept, left_out):
    """
    A 1.2 producer's header with a newline would, unescaped in a 1.0 frame,
    forge headers (or end them early) in a subscriber's MESSAGE; a value
    ending in CR reads as a CRLF EOL without 1.2's escape. The broker leaves
    such headers out of the frame and keeps the rest of the message.
    """
    topic = unique("/topic/old.")
    subscriber = raw()
    assert subscriber.connect(version).command == "CONNECTED"
    subscriber.send_frame("SUBSCRIBE", {"id": "s", "destination": topic, "receipt": "subscribed"})
    assert subscriber.read_frame().command == "RECEIPT"
    producer = raw()
    assert producer.connect("1.2").command == "CONNECTED"
    headers = {
        "destination": topic,
        "x-plain": "ok",
        "x-colon": "a\\cb",
        "x-newline": "a\\n\\nforged:1",
        "x\\cname": "n",
        "x-cr": "v\\r",
        "receipt": "sent",
    }
    producer.send_frame("SEND", headers, b"body")
    assert producer.read_frame().command == "RECEIPT"
    message = subscriber.read_frame()
    assert message.command == "MESSAGE", message
    assert message.body == b"body"
    assert message.headers["destination"] == topic
    assert message.headers["content-length"] == "4"
    assert "forged" not in message.headers
    for name, value in kept.items():
        assert message.headers[name] == value
    for name in left_out:
        assert name not in message.headers
    assert subscriber.read_frame(timeout=0.2) is None
