"""
The session on an in-memory transport and a fake clock.
"""

import pytest
from twisted.internet.testing import StringTransport
from zope.interface.verify import verifyObject

from stompd.broker.message import LARGE_BODY
from stompd.config import Config, HeartBeatConfig, parse_config
from stompd.interfaces import IDeliveryTarget
from stompd.session.session import SUBSCRIBER_PATIENCE
from stompd.storage.memory import MemoryStore
from stompd.testing.harness import LOCAL_PEER, FakeClient, SlowStore, make_broker


def subscribed(broker, destination, ack="auto", **headers):
    client = FakeClient(broker)
    client.connect()
    client.send("SUBSCRIBE", {"destination": destination, "id": "s", "ack": ack, **headers})
    return client


def test_connected_headers():
    client = FakeClient(make_broker())
    connected = client.connect()
    assert connected.headers["version"] == "1.2"
    assert connected.headers["session"].startswith("session-")
    assert connected.headers["server"].startswith("stompd/")
    assert connected.headers["heart-beat"] == "1000,1000"


def test_no_common_version():
    client = FakeClient(make_broker())
    client.send("CONNECT", {"accept-version": "2.0,3.1"})
    [error] = client.frames()
    assert error.command == "ERROR"
    assert error.headers["version"] == "1.0,1.1,1.2"
    assert client.closed


def test_queue_round_robin_and_ack():
    broker = make_broker()
    consumers = [subscribed(broker, "/queue/work", ack="client-individual") for _ in range(2)]
    producer = FakeClient(broker)
    producer.connect()
    for n in range(4):
        producer.send("SEND", {"destination": "/queue/work"}, b"%d" % n)
    bodies = [[f.body for f in c.frames()] for c in consumers]
    assert bodies == [[b"0", b"2"], [b"1", b"3"]]


def test_nack_redelivers_with_count():
    broker = make_broker()
    consumer = subscribed(broker, "/queue/work", ack="client-individual")
    producer = FakeClient(broker)
    producer.connect()
    producer.send("SEND", {"destination": "/queue/work"}, b"x")
    [first] = consumer.frames()
    assert "redelivered" not in first.headers
    consumer.send("NACK", {"id": first.headers["ack"]})
    [again] = consumer.frames()
    assert again.headers["redelivered"] == "true"
    assert again.headers["delivery-count"] == "2"
    assert again.headers["message-id"] == first.headers["message-id"]


def test_heart_beats_sent_on_time():
    config = Config(heart_beat=HeartBeatConfig(send=1000, receive=1000, grace=2.0))
    broker = make_broker(config)
    client = FakeClient(broker)
    client.connect(**{"heart-beat": "0,1000"})
    broker.clock.advance(0.999)
    assert client.received() == b""
    broker.clock.advance(0.001)
    assert client.received() == b"\n"
    broker.clock.advance(1.0)
    assert client.received() == b"\n"
    assert not client.closed


def test_silent_client_is_disconnected():
    config = Config(heart_beat=HeartBeatConfig(send=1000, receive=1000, grace=2.0))
    broker = make_broker(config)
    client = FakeClient(broker)
    client.connect(**{"heart-beat": "1000,0"})
    broker.clock.advance(1.5)
    client.send_bytes(b"\n")
    broker.clock.advance(1.9)
    assert not client.closed
    broker.clock.advance(0.2)
    [error] = client.frames()
    assert error.command == "ERROR"
    assert error.headers["message"] == "heart-beat timeout"
    assert client.closed


def test_connect_timeout():
    broker = make_broker()
    client = FakeClient(broker)
    broker.clock.advance(broker.config.connect_timeout)
    [error] = client.frames()
    assert error.headers["message"] == "connect timeout"


def test_receipts_come_in_order_once_stored():
    store = SlowStore()
    broker = make_broker(store=store)
    producer = FakeClient(broker)
    producer.connect()
    producer.send_bytes(
        b"SEND\ndestination:/queue/a\nreceipt:1\n\nfirst\x00"
        b"SEND\ndestination:/queue/b\nreceipt:2\n\nsecond\x00"
        b"SEND\ndestination:/queue/a\nreceipt:3\n\nthird\x00"
    )
    # All went to the store, none is confirmed yet.
    assert len(store.pending) == 3
    assert producer.frames() == []
    # The store answers the third first: its RECEIPT waits for the others.
    store.answer(index=2)
    assert producer.frames() == []
    store.answer()
    assert [f.headers["receipt-id"] for f in producer.frames()] == ["1"]
    store.answer()
    assert [f.headers["receipt-id"] for f in producer.frames()] == ["2", "3"]
    assert producer.transport.producerState == "producing"


def test_other_frames_with_a_receipt_wait_for_what_is_being_stored():
    store = SlowStore()
    client = FakeClient(make_broker(store=store))
    client.connect()
    client.send("SEND", {"destination": "/queue/q"}, b"0")
    client.send("SUBSCRIBE", {"destination": "/queue/other", "id": "s", "receipt": "sub"})
    assert client.frames() == []
    assert client.transport.producerState == "paused"
    store.answer()
    [receipt] = client.frames()
    assert receipt.headers == {"receipt-id": "sub"}


def test_paused_consumer_gets_no_queue_messages():
    broker = make_broker()
    slow = subscribed(broker, "/queue/work")
    fast = subscribed(broker, "/queue/work")
    slow.session.pauseProducing()
    producer = FakeClient(broker)
    producer.connect()
    for n in range(3):
        producer.send("SEND", {"destination": "/queue/work"}, b"%d" % n)
    assert slow.frames() == []
    assert [f.body for f in fast.frames()] == [b"0", b"1", b"2"]


def test_publisher_paused_above_high_water_mark():
    config = Config()
    config = Config(queues=type(config.queues)(high_water_mark=4))
    broker = make_broker(config)
    producer = FakeClient(broker)
    producer.connect()
    for n in range(5):
        producer.send("SEND", {"destination": "/queue/full", "receipt": str(n)}, b"x")
    assert [f.headers["receipt-id"] for f in producer.frames()] == ["0", "1", "2"]
    assert producer.transport.producerState == "paused"
    consumer = subscribed(broker, "/queue/full")
    assert len(consumer.frames()) == 5
    assert [f.headers["receipt-id"] for f in producer.frames()] == ["3", "4"]
    assert producer.transport.producerState == "producing"


def test_publisher_waiting_for_room_sees_a_queue_drained_elsewhere():
    """
    Another node sharing the store drains the queue: this node hears of no
    consumer, but looks at the depth while its publisher waits.
    """
    from stompd.broker.policy import DEFAULT_POLICY
    from stompd.broker.queue import ROOM_CHECK_INTERVAL

    store = MemoryStore()
    broker = make_broker(Config(queues=type(Config().queues)(high_water_mark=4)), store=store)
    producer = FakeClient(broker)
    producer.connect()
    for n in range(5):
        producer.send("SEND", {"destination": "/queue/full", "receipt": str(n)}, b"x")
    assert [f.headers["receipt-id"] for f in producer.frames()] == ["0", "1", "2"]
    # The other node's consumer takes and acknowledges everything.
    taken = store.reserve("/queue/full", 10, 0.0, DEFAULT_POLICY).result
    store.ack("/queue/full", [(m.id, m.delivery_count) for m in taken])
    assert producer.frames() == []
    broker.clock.advance(ROOM_CHECK_INTERVAL)
    assert [f.headers["receipt-id"] for f in producer.frames()] == ["3", "4"]
    assert producer.transport.producerState == "producing"
    # With nobody waiting, the looking stops.
    broker.clock.advance(ROOM_CHECK_INTERVAL)
    assert not [call for call in broker.clock.getDelayedCalls() if "check_room" in repr(call)]


def test_closed_client_that_does_not_go_is_cut():
    broker = make_broker()
    client = FakeClient(broker)
    client.send("SEND", {"destination": "/queue/a"})
    [error] = client.frames()
    assert error.headers["message"] == "not connected"
    assert client.closed and not client.transport.disconnected
    broker.clock.advance(broker.config.close_timeout)
    assert client.transport.disconnected


def test_commit_that_cannot_settle_everything_changes_nothing():
    broker = make_broker()
    consumer = subscribed(broker, "/queue/work", ack="client")
    producer = FakeClient(broker)
    producer.connect()
    for n in range(3):
        producer.send("SEND", {"destination": "/queue/work"}, b"%d" % n)
    acks = [f.headers["ack"] for f in consumer.frames()]
    consumer.send("BEGIN", {"transaction": "t"})
    consumer.send("SEND", {"destination": "/queue/work", "transaction": "t"}, b"new")
    consumer.send("ACK", {"id": acks[2], "transaction": "t"})
    # Covered already by the cumulative ACK of the third message.
    consumer.send("ACK", {"id": acks[1], "transaction": "t"})
    consumer.send("COMMIT", {"transaction": "t"})
    [error] = consumer.frames()
    assert error.headers["message"] == "unknown message"
    assert "already settles" in error.body.decode()
    # Nothing was applied: the three come back to the next consumer, and the
    # transaction's SEND was never published.
    consumer.disconnect()
    other = subscribed(broker, "/queue/work")
    assert [f.body for f in other.frames()] == [b"0", b"1", b"2"]


class CountingStore(MemoryStore):
    def __init__(self):
        super().__init__()
        self.reserves = 0

    def reserve(self, queue, limit, now, lease_until):
        self.reserves += 1
        return super().reserve(queue, limit, now, lease_until)


def test_frames_of_one_read_dispatch_once():
    store = CountingStore()
    broker = make_broker(store=store)
    consumer = subscribed(broker, "/queue/burst", ack="client-individual")
    producer = FakeClient(broker)
    producer.connect()
    store.reserves = 0
    producer.send_bytes(b"".join(b"SEND\ndestination:/queue/burst\n\n%d\x00" % n for n in range(20)))
    assert store.reserves == 1
    delivered = consumer.frames()
    assert [f.body for f in delivered] == [b"%d" % n for n in range(20)]
    store.reserves = 0
    consumer.send_bytes(b"".join(b"ACK\nid:" + f.headers["ack"].encode() + b"\n\n\x00" for f in delivered))
    assert store.reserves == 1


def test_sends_without_receipt_do_not_wait_for_the_store():
    store = SlowStore()
    client = FakeClient(make_broker(store=store))
    client.connect()
    for n in range(3):
        client.send("SEND", {"destination": "/queue/q"}, b"%d" % n)
    # All three went to the store at once, in order.
    assert len(store.pending) == 3
    client.send("SEND", {"destination": "/queue/q", "receipt": "r"}, b"3")
    # The receipted SEND goes too; its RECEIPT waits for all four.
    assert len(store.pending) == 4
    for _ in range(3):
        assert client.frames() == []
        store.answer()
    assert client.frames() == []
    store.answer()
    [receipt] = client.frames()
    assert receipt.headers == {"receipt-id": "r"}


def test_a_send_not_stored_gets_an_error_and_nothing_later_is_confirmed():
    from stompd.errors import StorageError

    store = SlowStore()
    client = FakeClient(make_broker(store=store))
    client.connect()
    client.send("SEND", {"destination": "/queue/q"}, b"0")
    client.send("DISCONNECT", {"receipt": "bye"})
    store.answer(StorageError("storage unavailable", "Redis did not answer."))
    [error] = client.frames()
    assert error.command == "ERROR"
    assert error.headers["message"] == "storage unavailable"
    assert client.closed


def test_unconfirmed_sends_are_bounded():
    from stompd.session.session import MAX_UNCONFIRMED, RESUME_UNCONFIRMED

    store = SlowStore()
    client = FakeClient(make_broker(store=store))
    client.connect()
    for n in range(2 * MAX_UNCONFIRMED):
        client.send("SEND", {"destination": "/queue/q"}, b"%d" % n)
    assert len(store.pending) == MAX_UNCONFIRMED
    assert client.transport.producerState == "paused"
    # Reading resumes once no more than RESUME_UNCONFIRMED are left, not
    # at every SEND stored.
    for _ in range(MAX_UNCONFIRMED - RESUME_UNCONFIRMED - 1):
        store.answer()
    assert len(store.pending) == RESUME_UNCONFIRMED + 1
    assert client.transport.producerState == "paused"
    store.answer()
    # Reading resumes: what the client sent meanwhile is read at once, and
    # its SENDs go to the store together, in one call.
    assert len(store.pending) == RESUME_UNCONFIRMED + 1
    assert store.pending[-1].result.result == 2 * MAX_UNCONFIRMED
    assert client.transport.producerState == "producing"
    while store.pending:
        store.answer()
    assert client.transport.producerState == "producing"
    # Every SEND was read and stored, none twice.
    assert store.depth("/queue/q").result == 2 * MAX_UNCONFIRMED


class SequenceTransport(StringTransport):
    """
    A transport that records each write and each sequence written.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.writes = []

    def write(self, data):
        self.writes.append(data)
        super().write(data)

    def writeSequence(self, data):
        self.writes.append(tuple(data))
        super().writeSequence(data)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_a_large_body_is_written_as_it_is_to_every_subscriber(version):
    broker = make_broker()
    body = bytes(range(256)) * (LARGE_BODY // 256 + 1)
    subscribers = []
    for n in range(2):
        subscriber = FakeClient(broker, version, SequenceTransport(peerAddress=LOCAL_PEER))
        subscriber.connect()
        subscriber.send("SUBSCRIBE", {"destination": "/topic/large", "id": f"s{n}", "ack": "client"})
        subscriber.transport.writes.clear()
        subscribers.append(subscriber)
    producer = FakeClient(broker)
    producer.connect()
    producer.send("SEND", {"destination": "/topic/large", "content-length": str(len(body))}, body)
    written_bodies = []
    for subscriber in subscribers:
        [frame] = subscriber.frames()
        assert (frame.command, frame.body) == ("MESSAGE", body)
        # One sequence of parts, the body one of them.
        [(head, lines, written_body, end)] = subscriber.transport.writes
        assert (written_body, end) == (body, b"\x00")
        written_bodies.append(written_body)
    # The same bytes object for every subscriber: never copied per delivery.
    assert written_bodies[0] is written_bodies[1]


class CountingTransport(StringTransport):
    """
    A transport that says how many bytes wait in it: what the test sets.
    """

    waiting = 0

    def buffered_bytes(self):
        return self.waiting


def _topic_with_a_paused_subscriber():
    """
    A broker with C{max-buffered} of 100,000 bytes, a subscriber of
    C{/topic/stream} whose transport has paused it (and says as much waits
    in it as the test sets), and a producer.
    """
    broker = make_broker(parse_config("[limits]\nmax-buffered = 100000\n"))
    subscriber = FakeClient(broker, transport=CountingTransport(peerAddress=LOCAL_PEER))
    subscriber.connect()
    subscriber.send("SUBSCRIBE", {"destination": "/topic/stream", "id": "s"})
    producer = FakeClient(broker)
    producer.connect()
    subscriber.session.pauseProducing()
    return broker, subscriber, producer


def _publish(producer, receipt=None):
    headers = {"destination": "/topic/stream"}
    if receipt is not None:
        headers["receipt"] = receipt
    producer.send("SEND", headers, b"x" * 20000)


def _receipts(client):
    return [f.headers["receipt-id"] for f in client.frames() if f.command == "RECEIPT"]


def test_a_slow_consumer_is_judged_by_what_waits_in_its_transport():
    _, subscriber, producer = _topic_with_a_paused_subscriber()
    # A client that reads on but whose buffer never empties between
    # messages: more than max-buffered written while paused, little waiting.
    subscriber.transport.waiting = 20000
    for _ in range(10):
        _publish(producer)
        subscriber.received()
    assert not subscriber.closed
    # Then it stops reading.
    subscriber.transport.waiting = 100001
    _publish(producer)
    assert subscriber.closed
    assert [f.headers["message"] for f in subscriber.frames() if f.command == "ERROR"] == ["slow consumer"]


def test_a_session_is_a_delivery_target():
    client = FakeClient(make_broker())
    client.connect()
    assert verifyObject(IDeliveryTarget, client.session)


def test_a_topic_publisher_waits_for_a_subscriber_far_behind_until_it_reads():
    broker, subscriber, producer = _topic_with_a_paused_subscriber()
    subscriber.transport.waiting = 40000
    _publish(producer, "r0")
    assert _receipts(producer) == ["r0"]
    # More than half of max-buffered waits: what the publisher sends next
    # is not handled until the subscriber has read it.
    subscriber.transport.waiting = 60000
    _publish(producer, "r1")
    _publish(producer, "r2")
    assert _receipts(producer) == ["r1"]
    # Another topic's publisher is not held up.
    other = FakeClient(broker)
    other.connect()
    other.send("SEND", {"destination": "/topic/elsewhere", "receipt": "e"}, b"x")
    assert _receipts(other) == ["e"]
    broker.clock.advance(1)
    assert _receipts(producer) == []
    subscriber.transport.waiting = 0
    subscriber.session.resumeProducing()
    assert _receipts(producer) == ["r2"]
    assert not subscriber.closed
    assert [f.command for f in subscriber.frames()].count("MESSAGE") == 3


def test_a_subscriber_that_stops_reading_holds_its_topic_up_only_for_a_while():
    broker, subscriber, producer = _topic_with_a_paused_subscriber()
    subscriber.transport.waiting = 60000
    _publish(producer, "r0")
    _publish(producer, "r1")
    assert _receipts(producer) == ["r0"]
    broker.clock.advance(SUBSCRIBER_PATIENCE)
    # Patience spent: the publisher goes on, without waiting again for it...
    assert _receipts(producer) == ["r1"]
    _publish(producer, "r2")
    assert _receipts(producer) == ["r2"]
    assert not subscriber.closed
    # ...until it is over max-buffered and disconnected as a slow consumer.
    subscriber.transport.waiting = 100001
    _publish(producer, "r3")
    assert _receipts(producer) == ["r3"]
    assert subscriber.closed
    assert [f.headers["message"] for f in subscriber.frames() if f.command == "ERROR"] == ["slow consumer"]


def test_a_topic_publisher_waiting_for_a_subscriber_goes_on_when_it_leaves():
    _, subscriber, producer = _topic_with_a_paused_subscriber()
    subscriber.transport.waiting = 60000
    _publish(producer, "r0")
    _publish(producer, "r1")
    assert _receipts(producer) == ["r0"]
    subscriber.transport.loseConnection()
    subscriber.session.connection_lost()
    assert _receipts(producer) == ["r1"]
