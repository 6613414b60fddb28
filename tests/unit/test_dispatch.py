"""
The dispatch gate: queues dispatch, and sessions write, once per burst of
frames; and what a session keeps for the end of a burst reaches a TCP
client in one piece, in order, before the connection closes.
"""

from twisted.internet.testing import StringTransport

from stompd.broker.dispatch import DispatchGate
from stompd.broker.message import LARGE_BODY
from stompd.codec import FrameParser
from stompd.config import Config
from stompd.testing.harness import LOCAL_PEER, FakeClient, make_broker


class Recorder:
    def __init__(self, name, log, gate=None, then=None):
        self.name = name
        self.log = log
        self.gate = gate
        self.then = then

    def wake(self):
        self.log.append(("wake", self.name))
        if self.then is not None:
            self.then()

    def flush(self):
        self.log.append(("flush", self.name))


def test_queues_dispatch_then_targets_flush_when_the_last_holder_lets_go():
    gate = DispatchGate()
    log = []
    queue, session = Recorder("q", log), Recorder("s", log)
    gate.hold()
    gate.hold()
    assert gate.defer(queue)
    gate.flush_later(session)
    gate.release()
    assert log == []
    assert gate.batching
    gate.release()
    assert log == [("wake", "q"), ("flush", "s")]
    assert not gate.batching
    assert not gate.defer(queue)


def test_what_a_dispatch_asks_for_is_done_in_the_same_release():
    gate = DispatchGate()
    log = []
    session = Recorder("s", log)

    def deliver_and_hold():
        # A dispatch that holds the gate while it deals, as a queue does.
        assert gate.batching
        gate.hold()
        gate.flush_later(session)
        gate.release()

    queue = Recorder("q", log, then=deliver_and_hold)
    gate.hold()
    gate.defer(queue)
    gate.release()
    assert log == [("wake", "q"), ("flush", "s")]


class SendingTransport(StringTransport):
    """
    A transport that can send at once, as plain TCP's can: records each
    piece it is given that way.
    """

    def __init__(self):
        super().__init__(peerAddress=LOCAL_PEER)
        self.sent_at_once = []

    def write_frames(self, frames):
        data = b"".join(frames)
        self.sent_at_once.append(data)
        self.write(data)

    def write(self, data):
        # What comes after loseConnection would never reach the client.
        assert not self.disconnecting, data
        super().write(data)


def sending_client(broker, **headers):
    client = FakeClient(broker, transport=SendingTransport())
    client.connect(**headers)
    client.transport.sent_at_once.clear()
    return client


def topic_subscribers(broker, count):
    """
    C{count} sending clients subscribed to /topic/t, with nothing recorded yet.
    """
    subscribers = [sending_client(broker) for _ in range(count)]
    for n, subscriber in enumerate(subscribers):
        subscriber.send("SUBSCRIBE", {"id": str(n), "destination": "/topic/t"})
        subscriber.transport.sent_at_once.clear()
    return subscribers


def frames_of(data):
    parser = FrameParser(Config().limits.frames)
    parser.version = "1.2"
    parser.feed(data)
    frames = []
    while (frame := parser.next_frame()) is not None:
        frames.append(frame)
    return frames


def test_a_burst_reaches_each_subscriber_in_one_piece():
    broker = make_broker()
    subscribers = topic_subscribers(broker, 3)
    producer = sending_client(broker)
    producer.send_bytes(b"".join(b"SEND\ndestination:/topic/t\n\n%d\x00" % n for n in range(20)))
    for subscriber in subscribers:
        [piece] = subscriber.transport.sent_at_once
        assert [f.body for f in frames_of(piece)] == [b"%d" % n for n in range(20)]


def test_queue_deliveries_and_receipts_go_out_once_per_burst_in_order():
    broker = make_broker()
    consumer = sending_client(broker)
    consumer.send("SUBSCRIBE", {"id": "s", "destination": "/queue/q", "ack": "client-individual"})
    consumer.transport.sent_at_once.clear()
    producer = sending_client(broker)
    producer.send_bytes(
        b"".join(b"SEND\ndestination:/queue/q\nreceipt:r%d\n\n%d\x00" % (n, n) for n in range(5))
    )
    [receipts] = producer.transport.sent_at_once
    assert [f.headers["receipt-id"] for f in frames_of(receipts)] == ["r0", "r1", "r2", "r3", "r4"]
    [messages] = consumer.transport.sent_at_once
    delivered = frames_of(messages)
    assert [f.body for f in delivered] == [b"0", b"1", b"2", b"3", b"4"]
    consumer.transport.sent_at_once.clear()
    consumer.send_bytes(
        b"".join(b"ACK\nid:" + f.headers["ack"].encode() + b"\nreceipt:a%d\n\n\x00" % n for n, f in enumerate(delivered))
    )
    [acks] = consumer.transport.sent_at_once
    assert [f.headers["receipt-id"] for f in frames_of(acks)] == ["a0", "a1", "a2", "a3", "a4"]


def test_an_error_in_a_burst_is_sent_before_the_connection_closes():
    broker = make_broker()
    client = sending_client(broker)
    client.send_bytes(b"SEND\ndestination:/queue/q\nreceipt:1\n\nok\x00BOGUS\n\n\x00")
    assert client.transport.disconnecting
    frames = frames_of(client.transport.value())
    assert [f.command for f in frames] == ["RECEIPT", "ERROR"]
    assert frames[1].headers["message"] == "unknown command"


def test_without_a_burst_a_frame_is_sent_as_it_is_made():
    broker = make_broker()
    client = sending_client(broker, **{"heart-beat": "0,1000"})
    broker.clock.advance(1.0)
    assert client.transport.sent_at_once == [b"\n"]


def test_a_reads_only_frame_is_no_burst_and_its_messages_are_sent_as_made():
    broker = make_broker()
    subscribers = topic_subscribers(broker, 2)
    producer = sending_client(broker)
    kept = []
    gate = broker.dispatch_gate
    flush_later = gate.flush_later

    def keep(target):
        kept.append(target)
        flush_later(target)

    # Recorded, and still done: nothing may be kept for the end of a burst.
    gate.flush_later = keep
    producer.send_bytes(b"SEND\ndestination:/topic/t\n\nlone\x00")
    assert kept == []
    for subscriber in subscribers:
        [piece] = subscriber.transport.sent_at_once
        assert [f.body for f in frames_of(piece)] == [b"lone"]


def test_a_large_body_in_a_burst_keeps_every_frame_whole_and_in_order():
    broker = make_broker()
    subscriber = sending_client(broker)
    subscriber.send("SUBSCRIBE", {"id": "s", "destination": "/topic/t"})
    subscriber.transport.clear()
    large = b"x" * LARGE_BODY
    producer = sending_client(broker)
    producer.send_bytes(
        b"SEND\ndestination:/topic/t\n\nsmall\x00"
        + b"SEND\ndestination:/topic/t\ncontent-length:%d\n\n%s\x00" % (len(large), large)
        + b"SEND\ndestination:/topic/t\n\nlast\x00"
    )
    assert [f.body for f in frames_of(subscriber.transport.value())] == [b"small", large, b"last"]


def test_a_transactions_messages_reach_each_subscriber_in_one_piece():
    broker = make_broker()
    [subscriber] = topic_subscribers(broker, 1)
    producer = sending_client(broker)
    producer.send("BEGIN", {"transaction": "t"})
    for n in range(5):
        producer.send("SEND", {"destination": "/topic/t", "transaction": "t"}, b"%d" % n)
    assert subscriber.transport.sent_at_once == []
    producer.send("COMMIT", {"transaction": "t"})
    [piece] = subscriber.transport.sent_at_once
    assert [f.body for f in frames_of(piece)] == [b"0", b"1", b"2", b"3", b"4"]
