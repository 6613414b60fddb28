"""
Work-queue semantics through sessions on in-memory transports, on a fake
clock: visibility timeouts, late acknowledgements, delivery bookkeeping,
dead letters, expiry, delays, priorities and channels.
"""

import dataclasses

import pytest

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from stompd.broker.vhost import ROUTE_CACHE_LIMIT
from stompd.config import Config, QueueConfig
from stompd.errors import StompError
from stompd.storage.memory import MemoryStore
from stompd.testing.harness import LOCAL_PEER, FakeClient, connected_client, make_broker

QUEUE = "/queue/jobs"


def broker_with(**queues):
    return make_broker(Config(queues=QueueConfig(**queues)))


def consumer(broker, destination=QUEUE, ack="client-individual", id="s", **headers):
    client = FakeClient(broker)
    client.connect()
    client.send("SUBSCRIBE", {"destination": destination, "id": id, "ack": ack, **headers})
    assert not client.closed
    return client


def send(client, body, destination=QUEUE, **headers):
    client.send("SEND", {"destination": destination, **headers}, body)


def messages(client):
    frames = client.frames()
    assert all(f.command == "MESSAGE" for f in frames), frames
    return frames


def bodies(client):
    return [f.body for f in messages(client)]


def assert_alive(client):
    assert not client.closed
    client.send("SEND", {"destination": "/topic/ping", "receipt": "alive"})
    assert [f.headers.get("receipt-id") for f in client.frames()] == ["alive"]


def assert_error(client, message):
    [error] = client.frames()
    assert error.command == "ERROR", error
    assert error.headers["message"] == message, error.headers
    assert client.closed
    return error


# Visibility timeouts


def test_stalled_consumer_loses_the_message_when_its_visibility_ends():
    broker = make_broker()
    stalled = consumer(broker, visibility="30")
    send(connected_client(broker), b"job")
    [first] = messages(stalled)
    assert first.headers["delivery-count"] == "1"
    other = consumer(broker, id="other", visibility="30")
    broker.clock.advance(29.9)
    assert messages(other) == [] and messages(stalled) == []
    broker.clock.advance(0.1)
    # Delivered again to a consumer (round-robin: the other one's turn), with
    # a new ack id; the stalled consumer stays connected.
    [again] = messages(other)
    assert (again.body, again.headers["delivery-count"], again.headers["redelivered"]) == (b"job", "2", "true")
    assert again.headers["message-id"] == first.headers["message-id"]
    assert again.headers["ack"] != first.headers["ack"]
    assert_alive(stalled)


def test_visibility_timeout_gives_prefetch_credit_back():
    broker = make_broker()
    client = consumer(broker, visibility="2.5", **{"prefetch-count": "1"})
    sender = connected_client(broker)
    send(sender, b"a")
    send(sender, b"b")
    assert bodies(client) == [b"a"]
    broker.clock.advance(2.5)
    # The credit came back: the message comes again (to its only consumer),
    # then, acknowledged, the next one.
    [again] = messages(client)
    assert (again.body, again.headers["delivery-count"]) == (b"a", "2")
    client.send("ACK", {"id": again.headers["ack"]})
    assert bodies(client) == [b"b"]


def test_default_visibility_timeout_from_config():
    broker = broker_with(visibility_timeout=10.0)
    client = consumer(broker)
    send(connected_client(broker), b"job")
    assert bodies(client) == [b"job"]
    broker.clock.advance(10)
    assert [f.headers["delivery-count"] for f in messages(client)] == ["2"]


def test_late_ack_after_redelivery_changes_nothing():
    broker = make_broker()
    client = consumer(broker, visibility="5")
    send(connected_client(broker), b"job")
    [first] = messages(client)
    broker.clock.advance(5)
    [second] = messages(client)
    client.send("ACK", {"id": first.headers["ack"], "receipt": "late"})
    [receipt] = client.frames()
    assert (receipt.command, receipt.headers["receipt-id"]) == ("RECEIPT", "late")
    client.send("NACK", {"id": first.headers["ack"], "receipt": "late-nack"})
    assert [f.headers["receipt-id"] for f in client.frames()] == ["late-nack"]
    # The newer delivery is untouched: still held, and it comes back when
    # this consumer goes.
    client.disconnect()
    other = consumer(broker, id="other")
    [third] = messages(other)
    assert (third.body, third.headers["delivery-count"]) == (b"job", "3")


def test_late_ack_in_a_transaction_changes_nothing():
    broker = make_broker()
    client = consumer(broker, visibility="5")
    sender = connected_client(broker)
    send(sender, b"old")
    [first] = messages(client)
    client.send("BEGIN", {"transaction": "t"})
    client.send("ACK", {"id": first.headers["ack"], "transaction": "t"})
    broker.clock.advance(5)
    [second] = messages(client)
    # The transaction's ACK is late by COMMIT: the rest of it still applies.
    client.send("SEND", {"destination": QUEUE, "transaction": "t"}, b"new")
    client.send("COMMIT", {"transaction": "t", "receipt": "committed"})
    frames = client.frames()
    assert sorted(f.command for f in frames) == ["MESSAGE", "RECEIPT"], frames
    [message] = [f for f in frames if f.command == "MESSAGE"]
    assert message.body == b"new"
    client.send("ACK", {"id": second.headers["ack"], "receipt": "acked"})
    assert [f.headers["receipt-id"] for f in client.frames()] == ["acked"]


def test_unknown_ack_id_is_still_an_error():
    broker = make_broker()
    client = consumer(broker, visibility="5")
    client.send("ACK", {"id": "never-delivered", "receipt": "r"})
    error = assert_error(client, "unknown message")
    assert error.headers["receipt-id"] == "r"


@pytest.mark.parametrize("seconds", [4.0, 0.0, 0.25])
def test_nack_with_visibility_delays_the_redelivery(seconds):
    broker = make_broker()
    client = consumer(broker)
    send(connected_client(broker), b"job")
    [first] = messages(client)
    client.send("NACK", {"id": first.headers["ack"], "visibility": f"{seconds:g}"})
    if seconds:
        broker.clock.advance(seconds - 0.01)
        assert messages(client) == []
        broker.clock.advance(0.01)
    assert [f.headers["delivery-count"] for f in messages(client)] == ["2"]


# Delivery bookkeeping


class PausingTransport(StringTransport):
    """
    A transport whose buffer is full after C{room} writes: it pauses its
    producer, as a TCP transport does, from within the write.
    """

    def __init__(self, room):
        super().__init__(peerAddress=LOCAL_PEER)
        self.room = room

    def write(self, data):
        super().write(data)
        self.room -= 1
        if self.room == 0 and self.producer is not None:
            self.producer.pauseProducing()


def test_messages_a_consumer_could_not_take_are_not_counted():
    broker = make_broker()
    # CONNECTED and RECEIPT, then three MESSAGEs fill it.
    transport = PausingTransport(room=5)
    slow = FakeClient(broker, transport=transport)
    slow.connect()
    slow.send("SUBSCRIBE", {"destination": QUEUE, "id": "s", "ack": "client-individual", "receipt": "sub"})
    slow.frames()
    sender = connected_client(broker)
    sender.send_bytes(b"".join(b"SEND\ndestination:/queue/jobs\n\n%d\x00" % n for n in range(10)))
    first = messages(slow)
    assert len(first) == 3
    slow.session.resumeProducing()
    rest = messages(slow)
    assert [f.body for f in first + rest] == [b"%d" % n for n in range(10)]
    assert {f.headers["delivery-count"] for f in first + rest} == {"1"}
    assert not any("redelivered" in f.headers for f in rest)


def test_expire_after_and_visible_after_headers():
    broker = make_broker()
    broker.clock.advance(1000)
    client = consumer(broker)
    sender = connected_client(broker)
    send(sender, b"ttl", ttl="60000")
    send(sender, b"later", delay="1500")
    [ttl] = messages(client)
    assert ttl.headers["expire-after"] == "1060000"
    assert "visible-after" not in ttl.headers
    # The producer's headers are untouched.
    assert ttl.headers["ttl"] == "60000"
    broker.clock.advance(1.5)
    [later] = messages(client)
    assert later.headers["visible-after"] == "1001500"
    assert "expire-after" not in later.headers


# Dead letters


def dead_letters(broker, destination=QUEUE + ".DLQ"):
    return consumer(broker, destination, id="dlq")


def test_poison_message_is_dead_lettered_after_max_deliveries():
    broker = make_broker()
    broker.clock.advance(100)
    client = consumer(broker, **{"max-deliveries": "3"})
    send(connected_client(broker), b"poison", **{"content-type": "text/plain", "x-job": "7"})
    for expected in ("1", "2", "3"):
        [delivery] = messages(client)
        assert delivery.headers["delivery-count"] == expected
        broker.clock.advance(0.25)
        client.send("NACK", {"id": delivery.headers["ack"]})
    assert messages(client) == []
    dlq = dead_letters(broker)
    [dead] = messages(dlq)
    assert dead.body == b"poison"
    headers = dead.headers
    assert headers["destination"] == "/queue/jobs.DLQ"
    assert (headers["content-type"], headers["x-job"]) == ("text/plain", "7")
    assert headers["original-destination"] == QUEUE
    assert headers["original-message-id"] == delivery.headers["message-id"]
    assert headers["message-id"] != delivery.headers["message-id"]
    assert headers["dead-letter-reason"] == "max-deliveries"
    assert headers["original-delivery-count"] == "3"
    assert (headers["first-delivered-at"], headers["last-delivered-at"]) == ("100000", "100500")
    # A new message in an ordinary queue: its own count, its own ACK.
    assert headers["delivery-count"] == "1" and "redelivered" not in headers
    dlq.send("ACK", {"id": headers["ack"], "receipt": "acked"})
    assert [f.headers["receipt-id"] for f in dlq.frames()] == ["acked"]


def test_config_max_deliveries_and_dead_letter_pattern():
    broker = broker_with(max_deliveries=1, dead_letter_queue="/queue/dead.{name}")
    client = consumer(broker)
    send(connected_client(broker), b"once")
    [delivery] = messages(client)
    client.disconnect()
    [dead] = messages(dead_letters(broker, "/queue/dead./queue/jobs"))
    assert dead.headers["dead-letter-reason"] == "max-deliveries"


def test_activemq_maximum_redeliveries_counts_redeliveries():
    broker = make_broker()
    client = consumer(broker, **{"activemq.maximumRedeliveries": "1", "dead-letter-queue": "/queue/poison"})
    send(connected_client(broker), b"job")
    counts = []
    for _ in range(2):
        [delivery] = messages(client)
        counts.append(delivery.headers["delivery-count"])
        client.send("NACK", {"id": delivery.headers["ack"]})
    assert counts == ["1", "2"]
    assert messages(client) == []
    [dead] = messages(dead_letters(broker, "/queue/poison"))
    assert dead.headers["original-delivery-count"] == "2"


def test_visibility_timeouts_count_towards_max_deliveries():
    broker = make_broker()
    client = consumer(broker, visibility="1", **{"max-deliveries": "2"})
    dlq = dead_letters(broker)
    send(connected_client(broker), b"job")
    assert bodies(client) == [b"job"]
    broker.clock.advance(1)
    assert bodies(client) == [b"job"]
    broker.clock.advance(1)
    assert messages(client) == []
    [dead] = messages(dlq)
    assert dead.headers["original-delivery-count"] == "2"


def test_nack_without_requeue_rejects_at_once():
    broker = make_broker()
    client = consumer(broker)
    dlq = dead_letters(broker)
    send(connected_client(broker), b"bad")
    [delivery] = messages(client)
    client.send("NACK", {"id": delivery.headers["ack"], "requeue": "false", "receipt": "r"})
    assert [f.headers["receipt-id"] for f in client.frames()] == ["r"]
    [dead] = messages(dlq)
    assert (dead.body, dead.headers["dead-letter-reason"]) == (b"bad", "rejected")


def test_dead_letters_can_be_sent_back():
    broker = make_broker()
    client = consumer(broker, **{"max-deliveries": "1"})
    sender = connected_client(broker)
    send(sender, b"job")
    [delivery] = messages(client)
    client.send("NACK", {"id": delivery.headers["ack"]})
    dlq = dead_letters(broker)
    [dead] = messages(dlq)
    # Move it back: SEND it to the queue, then ACK it here.
    send(dlq, dead.body, QUEUE)
    dlq.send("ACK", {"id": dead.headers["ack"]})
    [back] = messages(client)
    assert (back.body, back.headers["delivery-count"]) == (b"job", "1")


def test_temporary_queues_drop_dead_letters_unless_told():
    broker = make_broker()
    client = FakeClient(broker)
    client.connect()
    client.send("SUBSCRIBE", {"destination": "/temp-queue/replies", "id": "t", "ack": "client", "max-deliveries": "1"})
    client.send("SUBSCRIBE", {"destination": "/temp-queue/kept", "id": "k", "ack": "client", "max-deliveries": "1",
                              "dead-letter-queue": "/queue/lost-replies"})
    send(client, b"reply", "/temp-queue/replies")
    send(client, b"kept", "/temp-queue/kept")
    for delivery in messages(client):
        client.send("NACK", {"id": delivery.headers["ack"]})
    assert messages(client) == []
    assert bodies(dead_letters(broker, "/queue/lost-replies")) == [b"kept"]
    # The other dead letter went nowhere: no queue holds a message.
    store = broker.store
    assert [key for key in store._queues if store.depth(key).result] == []


def test_empty_dead_letter_queue_pattern_drops():
    broker = broker_with(dead_letter_queue="")
    client = consumer(broker, **{"max-deliveries": "1"})
    send(connected_client(broker), b"job")
    [delivery] = messages(client)
    client.send("NACK", {"id": delivery.headers["ack"]})
    assert messages(dead_letters(broker)) == []
    assert messages(client) == []


# Expiry


def test_expired_messages_are_dead_lettered_never_delivered():
    broker = make_broker()
    broker.clock.advance(1000)
    sender = connected_client(broker)
    send(sender, b"ttl", ttl="500")
    send(sender, b"expiration", expiration="500")
    send(sender, b"expires", expires="1000500")
    send(sender, b"never", expires="0")
    broker.clock.advance(0.5)
    client = consumer(broker)
    assert bodies(client) == [b"never"]
    dead = messages(dead_letters(broker))
    assert [(f.body, f.headers["dead-letter-reason"]) for f in dead] == [
        (b"ttl", "expired"),
        (b"expiration", "expired"),
        (b"expires", "expired"),
    ]
    assert all("expire-after" not in f.headers and "first-delivered-at" not in f.headers for f in dead)


def test_default_ttl_and_drop():
    broker = broker_with(default_ttl=10.0, expired="drop")
    send(connected_client(broker), b"old")
    broker.clock.advance(10)
    send(connected_client(broker), b"new", ttl="0")
    client = consumer(broker)
    # ttl:0 expires at once, like the default one did.
    assert bodies(client) == []
    assert messages(dead_letters(broker)) == []


# Delayed delivery


def test_delayed_messages_are_held_then_delivered():
    broker = make_broker()
    client = consumer(broker)
    sender = connected_client(broker)
    for name, body in (("delay", b"ours"), ("AMQ_SCHEDULED_DELAY", b"activemq"), ("x-delay", b"rabbitmq")):
        sender.send("SEND", {"destination": QUEUE, name: "2000", "receipt": name}, body)
    # Stored at once: the receipts come before the messages are visible.
    assert [f.headers["receipt-id"] for f in sender.frames()] == ["delay", "AMQ_SCHEDULED_DELAY", "x-delay"]
    send(sender, b"now")
    assert bodies(client) == [b"now"]
    broker.clock.advance(1.999)
    assert bodies(client) == []
    broker.clock.advance(0.001)
    assert sorted(bodies(client)) == [b"activemq", b"ours", b"rabbitmq"]


def test_delayed_message_waits_for_a_consumer_that_comes_later():
    broker = make_broker()
    send(connected_client(broker), b"later", delay="5000")
    client = consumer(broker)
    assert bodies(client) == []
    broker.clock.advance(5)
    assert bodies(client) == [b"later"]


# Priorities


def test_higher_priority_first_fifo_within_one():
    broker = make_broker()
    sender = connected_client(broker)
    for n, priority in enumerate(["4", "9", None, "0", "9", "6"]):
        headers = {} if priority is None else {"priority": priority}
        send(sender, b"%d" % n, **headers)
    client = consumer(broker)
    assert bodies(client) == [b"1", b"4", b"5", b"0", b"2", b"3"]


# Channels


def test_channel_header_and_filters():
    broker = make_broker()
    sender = connected_client(broker)
    for n, channel in enumerate(["eu.paris", None, "us", "eu.rome"]):
        headers = {} if channel is None else {"channel": channel}
        send(sender, b"%d" % n, **headers)
    paris = consumer(broker, id="paris", channel="eu.paris")
    assert bodies(paris) == [b"0"]
    europe = consumer(broker, id="eu", channel="eu.*")
    [rome] = messages(europe)
    assert (rome.body, rome.headers["channel"]) == (b"3", "eu.rome")
    everything = consumer(broker, id="all")
    assert bodies(everything) == [b"1", b"2"]


def test_channel_queues_take_channels_from_the_destination():
    broker = broker_with(channel_queues=("/queue/tenant.*",))
    sender = connected_client(broker)
    send(sender, b"a", "/queue/tenant.x/acme")
    send(sender, b"b", "/queue/tenant.x/globex")
    send(sender, b"c", "/queue/other/acme")
    acme = consumer(broker, "/queue/tenant.x/acme", id="acme")
    [a] = messages(acme)
    assert (a.body, a.headers["destination"], a.headers["channel"]) == (b"a", "/queue/tenant.x/acme", "acme")
    assert bodies(consumer(broker, "/queue/tenant.x", id="all")) == [b"b"]
    # Not a channel queue: a queue of its own, slashes and all.
    assert bodies(consumer(broker, "/queue/other/acme", id="other")) == [b"c"]
    assert bodies(consumer(broker, "/queue/other", id="none")) == []


# Bad headers


def test_bad_work_queue_headers_get_errors():
    cases = [
        ("SEND", {"priority": "10"}, "invalid priority header"),
        ("SEND", {"priority": "high"}, "invalid priority header"),
        ("SEND", {"delay": "-5"}, "invalid delay header"),
        ("SEND", {"ttl": "soon"}, "invalid ttl header"),
        ("SUBSCRIBE", {"visibility": "-1"}, "invalid visibility header"),
        ("SUBSCRIBE", {"max-deliveries": "x"}, "invalid max-deliveries header"),
        ("SUBSCRIBE", {"dead-letter-queue": "/topic/dead"}, "invalid dead-letter-queue header"),
        ("SUBSCRIBE", {"dead-letter-queue": "/temp-queue/dead"}, "invalid dead-letter-queue header"),
    ]
    broker = make_broker()
    for command, headers, message in cases:
        client = connected_client(broker)
        base = {"destination": QUEUE, "receipt": "r"}
        if command == "SUBSCRIBE":
            base["id"] = "s"
        client.send(command, {**base, **headers})
        error = assert_error(client, message)
        assert error.headers["receipt-id"] == "r"
    client = consumer(broker)
    send(connected_client(broker), b"job")
    [delivery] = messages(client)
    client.send("NACK", {"id": delivery.headers["ack"], "requeue": "maybe"})
    assert_error(client, "invalid requeue header")
    assert_alive(connected_client(broker))


# Heart-beats per transport


def beating_consumer(broker, **session_options):
    client = FakeClient(broker, **session_options)
    client.connect(**{"heart-beat": "1000,0"})
    client.send("SUBSCRIBE", {"destination": QUEUE, "id": "s", "ack": "client-individual"})
    return client


def test_silent_tcp_client_is_dropped_after_twice_its_interval_and_its_messages_move_on():
    broker = make_broker()
    silent = beating_consumer(broker)
    send(connected_client(broker), b"job")
    assert bodies(silent) == [b"job"]
    other = consumer(broker, id="other")
    broker.clock.advance(1.9)
    assert not silent.closed
    broker.clock.advance(0.1)
    assert silent.frames()[0].headers["message"] == "heart-beat timeout"
    # Right away, not once the connection is finally gone.
    [again] = messages(other)
    assert (again.body, again.headers["redelivered"]) == (b"job", "true")


def test_websocket_grace_is_more_tolerant():
    broker = make_broker()
    tolerant = beating_consumer(broker, heart_beat_grace=broker.config.websocket.heart_beat_grace)
    broker.clock.advance(6.9)
    assert not tolerant.closed
    broker.clock.advance(0.1)
    assert tolerant.closed


# OCI compatibility


def oci_client(broker):
    client = FakeClient(broker, oci_compat=True)
    client.connect()
    return client


def test_oci_refuses_transactions_and_other_ack_modes():
    broker = make_broker()
    for command, headers in [
        ("BEGIN", {"transaction": "t"}),
        ("COMMIT", {"transaction": "t"}),
        ("ABORT", {"transaction": "t"}),
        ("SEND", {"destination": "q", "transaction": "t"}),
    ]:
        client = oci_client(broker)
        client.send(command, headers)
        assert_error(client, "transactions not supported")
    client = oci_client(broker)
    client.send("SUBSCRIBE", {"destination": "q", "id": "s", "ack": "auto"})
    assert_error(client, "invalid ack mode")


def test_oci_needs_credentials():
    broker = make_broker(Config(auth=dataclasses.replace(Config().auth, anonymous=True)))
    client = FakeClient(broker, oci_compat=True)
    client.send("CONNECT", {"accept-version": "1.2"})
    assert_error(client, "login required")


def test_oci_queue_ids_and_channels_as_destinations():
    broker = make_broker()
    client = oci_client(broker)
    client.send("SUBSCRIBE", {"destination": "ocid1.queue.oc1..aaa/ch1", "id": "s", "visibility": "30"})
    everyone = consumer(broker, "/queue/ocid1.queue.oc1..aaa", id="plain")
    sender = oci_client(broker)
    send(sender, b"to-channel", "ocid1.queue.oc1..aaa/ch1")
    send(sender, b"to-queue", "ocid1.queue.oc1..aaa")
    [delivery] = messages(client)
    # No ack header in SUBSCRIBE: client-individual, OCI's only mode.
    assert (delivery.body, delivery.headers["destination"]) == (b"to-channel", "ocid1.queue.oc1..aaa/ch1")
    assert "ack" in delivery.headers
    assert bodies(everyone) == [b"to-queue"]


# A store that answers later

class LaterStore(MemoryStore):
    """
    The memory store, but every answer comes on a later turn of the clock,
    as a network store's does: the broker's fast path for answers that are
    already there must not be the only one that works.
    """

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def _later(self, answered):
        later = Deferred()
        answered.addCallback(lambda result: self.clock.callLater(0, later.callback, result))
        return later


for _name in ("enqueue", "reserve", "ack", "release", "unreserve", "dead_letter", "depth", "next_visible_at"):
    setattr(
        LaterStore,
        _name,
        lambda self, *args, _method=getattr(MemoryStore, _name): self._later(_method(self, *args)),
    )


def settle_clock(clock, turns=50):
    for _ in range(turns):
        clock.advance(0)


def test_a_store_that_answers_later_gets_every_message_delivered_once():
    clock = Clock()
    broker = make_broker(store=LaterStore(clock), clock=clock)
    worker = consumer(broker, **{"prefetch-count": "3"})
    producer = connected_client(broker)
    producer.send_bytes(
        b"".join(b"SEND\ndestination:" + QUEUE.encode() + b"\n\n%d\x00" % n for n in range(10))
        + b"SEND\ndestination:" + QUEUE.encode() + b"\nreceipt:sent\n\n10\x00"
    )
    # Nothing is stored before the clock turns, so nothing is confirmed.
    assert producer.frames() == []
    seen = []
    for _ in range(10):
        settle_clock(clock)
        delivered = messages(worker)
        seen += [f.body for f in delivered]
        for frame in delivered:
            worker.send("ACK", {"id": frame.headers["ack"]})
    assert seen == [b"%d" % n for n in range(11)]
    assert [f.headers["receipt-id"] for f in producer.frames()] == ["sent"]
    worker.send("ACK", {"id": "never-delivered", "receipt": "late"})
    assert_error(worker, "unknown message")


def test_a_store_that_answers_later_confirms_an_ack_only_once_stored():
    clock = Clock()
    broker = make_broker(store=LaterStore(clock), clock=clock)
    worker = consumer(broker)
    send(connected_client(broker), b"job")
    settle_clock(clock)
    [frame] = messages(worker)
    worker.send("ACK", {"id": frame.headers["ack"], "receipt": "acked"})
    assert worker.frames() == []
    settle_clock(clock)
    assert [f.headers["receipt-id"] for f in worker.frames()] == ["acked"]
    assert broker.virtual_host("/").queues[broker.virtual_host("/").route(QUEUE, "", False).key].depth == 0


class HeldAckStore(LaterStore):
    """
    A L{LaterStore} whose ACKs are answered only when the test says so.
    """

    def __init__(self, clock):
        super().__init__(clock)
        self.held = []

    def ack(self, queue, deliveries):
        held = Deferred()
        self.held.append((held, MemoryStore.ack(self, queue, deliveries)))
        return held

    def answer_acks(self):
        for held, answered in self.held:
            answered.addCallback(held.callback)
        self.held = []


def test_a_consumer_gets_its_next_message_while_its_ack_is_being_stored():
    clock = Clock()
    store = HeldAckStore(clock)
    broker = make_broker(store=store, clock=clock)
    worker = consumer(broker, **{"prefetch-count": "1"})
    producer = connected_client(broker)
    send(producer, b"first")
    send(producer, b"second")
    settle_clock(clock)
    [first] = messages(worker)
    worker.send("ACK", {"id": first.headers["ack"], "receipt": "acked"})
    settle_clock(clock)
    # Its window has room again as soon as the ACK is read: the next
    # message does not wait a round trip of the store behind the ACK.
    assert bodies(worker) == [b"second"]
    assert store.held
    store.answer_acks()
    settle_clock(clock)
    assert [f.headers["receipt-id"] for f in worker.frames()] == ["acked"]


# Routes

def test_routes_of_queues_and_topics_are_kept_and_temporary_ones_are_not():
    vhost = make_broker().virtual_host("/")
    assert vhost.route(QUEUE, "session-a") is vhost.route(QUEUE, "session-b")
    assert vhost.route("/topic/t", "session-a") is vhost.route("/topic/t", "session-b")
    mine = vhost.route("/temp-queue/replies", "session-a")
    theirs = vhost.route("/temp-queue/replies", "session-b")
    assert (mine.owner, theirs.owner) == ("session-a", "session-b")
    assert mine.key != theirs.key
    # A bare name is a queue only for OCI listeners.
    assert vhost.route("jobs", "session-a", bare_queues=True).key == "/queue/jobs"
    with pytest.raises(StompError):
        vhost.route("jobs", "session-a")


def test_kept_routes_are_bounded():
    vhost = make_broker().virtual_host("/")
    first = vhost.route("/queue/q0", "s")
    for n in range(1, ROUTE_CACHE_LIMIT + 1):
        vhost.route(f"/queue/q{n}", "s")
    again = vhost.route("/queue/q0", "s")
    assert again is not first
    assert again.key == first.key
