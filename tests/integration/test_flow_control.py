"""
Flow control over real sockets: a consumer that stops reading does not hold
up the others, a topic subscriber that never reads is disconnected while one
that reads slowly slows the publisher down, and a publisher to a full queue
is slowed down until the queue drains.
"""

import socket
import threading
import time
from types import SimpleNamespace

import pytest


def stalled_subscriber(raw, port: int, destination: str):
    """
    A raw client, with a small receive buffer, that subscribes to
    C{destination} and then does not read until told to.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    client = raw(port, sock)
    assert client.connect().command == "CONNECTED"
    client.send_frame("SUBSCRIBE", {"id": "stalled", "destination": destination, "receipt": "subscribed"})
    receipt = client.read_frame()
    assert receipt is not None and receipt.command == "RECEIPT", receipt
    return client


def drain(client, limit: int, timeout: float = 10.0) -> list:
    """
    Read what the broker sent C{client}, until it closes or is quiet; at most
    C{limit} frames.
    """
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < limit and time.monotonic() < deadline:
        frame = client.read_frame(timeout=1.0)
        if frame is None:
            break
        frames.append(frame)
    return frames


@pytest.fixture
def flooded_topic(start_broker, connect, subscribe, unique, raw, publish_at_readers_pace):
    """
    A broker with a small C{max-buffered}, and on one of its topics a raw
    subscriber that never read and a stomp.py one that read all 400 large
    messages published.
    """
    broker = start_broker("close-timeout = 0.5\n[limits]\nmax-buffered = 262144\n")
    topic = unique("/topic/flood.")
    stalled = stalled_subscriber(raw, broker.port, topic)
    reader = connect(port=broker.port)
    subscribe(reader, topic, id="reader")
    producer = connect(port=broker.port)
    total = 400
    publish_at_readers_pace(producer, reader, topic, total)
    return SimpleNamespace(broker=broker, stalled=stalled, reader=reader, producer=producer, topic=topic, total=total)


def test_stalled_queue_consumer_does_not_hold_up_the_others(connect, subscribe, unique, raw, broker, publish_large):
    queue = unique("/queue/stalled.")
    stalled = stalled_subscriber(raw, broker.port, queue)
    reader = connect()
    subscribe(reader, queue, id="reader")
    producer = connect()
    total = 600
    publish_large(producer, queue, total)
    # The stalled consumer took its turns until its connection backed up;
    # the reader gets the rest while the stalled one still reads nothing.
    assert reader.collector.wait_for(lambda: len(reader.collector.messages) >= total // 2, timeout=20)
    settled_at = time.monotonic() + 20
    count = -1
    while count != len(reader.collector.messages) and time.monotonic() < settled_at:
        count = len(reader.collector.messages)
        time.sleep(0.3)
    read = [int(m.headers["n"]) for m in reader.collector.messages]
    assert read == sorted(read)
    held = [int(f.headers["n"]) for f in drain(stalled, total) if f.command == "MESSAGE"]
    # Nothing is lost or duplicated, and the stalled consumer got far less
    # than its round-robin half.
    assert sorted(read + held) == list(range(total))
    assert len(held) < total // 3, len(held)


def test_slow_topic_subscriber_is_disconnected(flooded_topic):
    stalled, reader, producer = flooded_topic.stalled, flooded_topic.reader, flooded_topic.producer
    topic, total = flooded_topic.topic, flooded_topic.total
    # Only the stalled subscriber fell behind by more than max-buffered.
    assert [int(m.headers["n"]) for m in reader.collector.messages] == list(range(total))
    # Publishing goes on for the others after the slow one is dropped.
    producer.send(topic, "after", receipt="after")
    assert producer.collector.wait_for(lambda: "after" in producer.collector.receipts)
    assert reader.collector.wait_for(lambda: reader.collector.messages[-1].body == "after")
    # The slow subscriber, once it reads, finds an ERROR after part of the
    # messages, and then the end of the connection.
    frames = drain(stalled, total + 10)
    assert frames, "the stalled subscriber got nothing"
    assert frames[-1].command == "ERROR", frames[-1]
    assert frames[-1].headers["message"] == "slow consumer"
    assert all(f.command == "MESSAGE" for f in frames[:-1])
    assert len(frames) - 1 < total
    assert stalled.is_closed(timeout=5)
    assert not producer.collector.errors and not reader.collector.errors


def test_a_topic_subscriber_that_reads_slowly_sets_the_publishers_pace(start_broker, connect, unique, raw, publish_large):
    broker = start_broker("[limits]\nmax-buffered = 262144\n")
    topic = unique("/topic/paced.")
    slow = stalled_subscriber(raw, broker.port, topic)
    producer = connect(port=broker.port)
    # 600 messages of 16 KiB, 9.8 MB, more than the kernel and max-buffered
    # hold for a client together, sent as fast as the broker reads them...
    total = 600
    publishing = threading.Thread(target=publish_large, args=(producer, topic, total, 60.0))
    publishing.start()
    # ...to a subscriber reading a frame every few milliseconds.
    read = []
    deadline = time.monotonic() + 60
    while len(read) < total and time.monotonic() < deadline:
        frame = slow.read_frame(timeout=5.0)
        assert frame is not None and frame.command == "MESSAGE", frame
        read.append(int(frame.headers["n"]))
        time.sleep(0.003)
    publishing.join(timeout=30)
    # It was never cut off, and has every message, in order.
    assert read == list(range(total))
    assert not publishing.is_alive()
    assert "published" in producer.collector.receipts
    assert not producer.collector.errors


def test_publisher_waits_while_queue_is_above_high_water_mark(start_broker, connect, subscribe, unique):
    broker = start_broker("[queues]\nhigh-water-mark = 10\n")
    queue = unique("/queue/full.")
    producer = connect(port=broker.port)
    for i in range(30):
        producer.send(queue, str(i), receipt=f"r{i}")
    # The SEND that fills the queue to the mark gets no receipt, and
    # nothing after it is read, while nobody consumes.
    assert producer.collector.wait_for(lambda: len(producer.collector.receipts) >= 9)
    time.sleep(0.5)
    assert producer.collector.receipts == [f"r{i}" for i in range(9)]
    # Another publisher to another queue is not held up.
    other = connect(port=broker.port)
    other.send(unique("/queue/elsewhere."), "x", receipt="elsewhere")
    assert other.collector.wait_for(lambda: "elsewhere" in other.collector.receipts)
    consumer = connect(port=broker.port)
    subscribe(consumer, queue)
    assert producer.collector.wait_for(lambda: len(producer.collector.receipts) == 30, timeout=10)
    assert producer.collector.receipts == [f"r{i}" for i in range(30)]
    assert consumer.collector.wait_for(lambda: len(consumer.collector.messages) == 30)
    assert consumer.collector.bodies() == [str(i) for i in range(30)]


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux TCP_INFO")
def test_subscriber_that_never_reads_loses_its_connection(flooded_topic, assert_connection_dropped):
    assert "slow consumer" in flooded_topic.broker.log
    assert_connection_dropped(flooded_topic.stalled.sock, timeout=3)
