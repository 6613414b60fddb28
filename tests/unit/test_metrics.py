"""
What the broker counts per destination and by dead-letter reason, on a
fake clock: queue and topic counts, their sampled rates, and the store's
reports of messages taken out without an acknowledgement.
"""

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from zope.interface import implementer

from stompd.broker.message import Message
from stompd.codec import Frame, encode_frame
from stompd.broker.metrics import LATENCY_BUCKETS, DestinationCounts, TimedStore
from stompd.broker.service import RATE_INTERVAL
from stompd.broker.topic import TOPIC_COUNTS_LIMIT, TopicExchange
from stompd.interfaces import ITimedStore
from stompd.storage.memory import MemoryStore
from stompd.testing.harness import connected_client, make_broker


def started_broker():
    broker = make_broker()
    broker.startService()
    return broker


def test_rates_are_counts_per_second_between_samples():
    counts = DestinationCounts()
    assert counts.sample(10.0)
    assert counts.rates == (0.0, 0.0, 0.0)
    counts.published += 50
    counts.delivered += 100
    counts.acked += 25
    assert counts.sample(15.0)
    assert counts.rates == (10.0, 20.0, 5.0)
    # Nothing happened: the rates fall to zero.
    assert not counts.sample(20.0)
    assert counts.rates == (0.0, 0.0, 0.0)


def test_queue_counts_sends_deliveries_and_acks():
    broker = started_broker()
    consumer = connected_client(broker)
    consumer.send("SUBSCRIBE", {"destination": "/queue/counted", "id": "c", "ack": "client-individual"})
    # A new queue's first sample is where its rates start from.
    broker.clock.advance(RATE_INTERVAL)
    producer = connected_client(broker)
    for n in range(10):
        producer.send("SEND", {"destination": "/queue/counted"}, b"m%d" % n)
    messages = [frame for frame in consumer.frames() if frame.command == "MESSAGE"]
    for message in messages[:4]:
        consumer.send("ACK", {"id": message.headers["ack"]})
    queue = broker.vhosts["/"].queues["/queue/counted"]
    assert (queue.counts.published, queue.counts.delivered, queue.counts.acked) == (10, 10, 4)
    broker.clock.advance(RATE_INTERVAL)
    assert queue.counts.rates == (10 / RATE_INTERVAL, 10 / RATE_INTERVAL, 4 / RATE_INTERVAL)


def test_topic_counts_deliveries_to_each_subscriber_and_publishes_here_only():
    broker = started_broker()
    for n in range(3):
        connected_client(broker).send("SUBSCRIBE", {"destination": "/topic/prices.#" if n else "/topic/prices.eur", "id": "s"})
    producer = connected_client(broker)
    for _ in range(4):
        producer.send("SEND", {"destination": "/topic/prices.eur"}, b"1.08")
    topics = broker.vhosts["/"].topics
    # Another node's message reaches the subscribers here: delivered, but
    # published there, not here.
    # Topics are filed by name without the /topic/ prefix.
    broker.vhosts["/"].topic_arrived("prices.eur", topics_message())
    counts = topics.counts["prices.eur"]
    assert (counts.published, counts.delivered) == (4, 15)
    assert topics.subscribers("prices.eur") == 3
    assert topics.subscribed_names() == ["prices.eur"]


def topics_message():
    return Message("elsewhere-1", "/topic/prices.eur", {"destination": "/topic/prices.eur"}, b"1.09")


def test_topic_counts_stay_bounded_when_publishers_invent_names():
    exchange = TopicExchange()
    message = topics_message()
    for n in range(TOPIC_COUNTS_LIMIT + 10):
        exchange.publish(f"invented.{n}", message)
    assert len(exchange.counts) == TOPIC_COUNTS_LIMIT
    exchange.sample(0.0)
    exchange.publish("invented.1", message)
    # Crowded: names idle since the last sample are forgotten.
    exchange.sample(5.0)
    assert list(exchange.counts) == ["invented.1"]


def test_dead_letters_and_expiry_are_counted_by_reason():
    broker = started_broker()
    producer = connected_client(broker)
    producer.send("SEND", {"destination": "/queue/short", "ttl": "1000"}, b"stale")
    producer.send("SEND", {"destination": "/queue/short", "ttl": "1000"}, b"stale too")
    broker.clock.advance(2)
    worker = connected_client(broker)
    worker.send("SUBSCRIBE", {"destination": "/queue/short", "id": "w", "ack": "client-individual"})
    producer.send("SEND", {"destination": "/queue/short"}, b"refused")
    [refused] = [frame for frame in worker.frames() if frame.command == "MESSAGE"]
    worker.send("NACK", {"id": refused.headers["ack"], "requeue": "false"})
    counters = broker.counters.totals(broker.sessions)
    assert counters.dead_lettered == {"expired": 2, "rejected": 1}
    assert (counters.messages["expired"], counters.messages["dead_lettered"]) == (2, 3)
    assert counters.dropped == {}


def test_frame_bytes_are_counted_by_command_as_on_the_wire():
    broker = started_broker()
    consumer = connected_client(broker)
    consumer.send("SUBSCRIBE", {"destination": "/queue/weighed", "id": "w", "receipt": "s"})
    receipt = consumer.received()
    producer = connected_client(broker)
    send = encode_frame(Frame("SEND", {"destination": "/queue/weighed"}, b"x" * 100), "1.2")
    # Heart-beats between frames are the connection's bytes, not a frame's.
    producer.send_bytes(b"\n\n" + send + b"\n" + send)
    delivered = consumer.received()
    counters = broker.counters.totals(broker.sessions)
    assert counters.frame_bytes_received["SEND"] == 2 * len(send)
    assert counters.frame_bytes_sent["RECEIPT"] == len(receipt)
    assert counters.frame_bytes_sent["MESSAGE"] == len(delivered)
    assert counters.bytes_sent["tcp"] == sum(counters.frame_bytes_sent.values())
    assert counters.bytes_received["tcp"] == sum(counters.frame_bytes_received.values()) + 3


def test_frames_of_a_connection_that_closed_are_counted_once():
    broker = started_broker()
    producer = connected_client(broker)
    send = encode_frame(Frame("SEND", {"destination": "/queue/gone", "receipt": "r"}, b"x"), "1.2")
    producer.send_bytes(send + send)
    receipt = producer.received()
    open_totals = broker.counters.totals(broker.sessions)
    producer.disconnect()
    for counters in (open_totals, broker.counters.totals(broker.sessions)):
        assert (counters.frames_received["SEND"], counters.frame_bytes_received["SEND"]) == (2, 2 * len(send))
        assert counters.frames_received["CONNECT"] == 1
        assert counters.frame_bytes_sent["RECEIPT"] == len(receipt)
        assert counters.frames_sent["CONNECTED"] == 1
        assert counters.bytes_sent["tcp"] == sum(counters.frame_bytes_sent.values())


def test_store_calls_are_timed_whether_answered_at_once_or_later():
    class HalfSlowStore(MemoryStore):
        def __init__(self, clock):
            super().__init__()
            self.clock = clock

        def depth(self, queue):
            later = Deferred()
            self.clock.callLater(0.25, later.callback, 0)
            return later

    clock = Clock()
    store = TimedStore(HalfSlowStore(clock), clock)
    enqueued = store.enqueue("/queue/q", [Message("m1", "/queue/q", {}, b"")])
    assert enqueued.called
    assert store.latencies["enqueue"].count == 1
    assert store.latencies["enqueue"].total == 0.0
    depth = store.depth("/queue/q")
    assert store.latencies["depth"].count == 0
    clock.advance(0.25)
    assert depth.called
    assert store.latencies["depth"].count == 1
    assert store.latencies["depth"].total == 0.25


def test_a_store_that_times_its_own_calls_is_not_timed_again():
    @implementer(ITimedStore)
    class BatchingStore(MemoryStore):
        def time_calls(self, observe):
            self.observe = observe

    clock = Clock()
    inner = BatchingStore()
    store = TimedStore(inner, clock)
    store.enqueue("/queue/q", [Message("m1", "/queue/q", {}, b"")])
    assert store.latencies["enqueue"].count == 0
    # One answer for three calls, 2 ms each.
    inner.observe("enqueue", 0.002, 3)
    inner.observe("publish", 0.002, 1)
    enqueue = store.latencies["enqueue"]
    assert (enqueue.count, enqueue.total) == (3, pytest.approx(0.006))
    assert enqueue.counts[LATENCY_BUCKETS.index(0.0025)] == 3
    assert "publish" not in store.latencies
