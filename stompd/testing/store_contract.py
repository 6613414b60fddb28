"""
The contract every L{IMessageStore} must meet, as a pytest suite.

A plugin author subclasses L{StoreContract} and provides a C{store} fixture
yielding a started store (with empty queues); every built-in store runs the
same suite::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            ...

Every rule the broker relies on from a store is here, so that a store that
passes behaves like the built-in ones for every client.
"""

import pytest_twisted
from twisted.internet.defer import DeferredList
from zope.interface.verify import verifyObject

from stompd.broker.message import Message
from stompd.broker.policy import DEFAULT_POLICY, DeadLetterQueue, DeliveryPolicy
from stompd.interfaces import IMessageStore

QUEUE = "/queue/contract"
DLQ = DeadLetterQueue("/queue/contract.DLQ", "/queue/contract.DLQ")
LEASED = DeliveryPolicy(lease=30.0)


def message(n: int, **options) -> Message:
    return Message(
        f"m{n}",
        QUEUE,
        {"destination": QUEUE, "n": str(n), "content-type": "application/octet-stream"},
        b"body\x00%d" % n,
        **options,
    )


async def ids(deferred) -> list[str]:
    return [m.id for m in await deferred]


def delivery(message: Message) -> tuple[str, int]:
    """
    The name of C{message}'s current delivery, as the broker keeps it.
    """
    return (message.id, message.delivery_count)


async def enqueue_all(store, messages, queue=QUEUE) -> None:
    for m in messages:
        await store.enqueue(queue, [m])


class StoreContract:
    """
    Behaviour the broker relies on from a message store.
    """

    def test_provides_interface(self, store):
        assert verifyObject(IMessageStore, store)

    # Order and counting

    @pytest_twisted.ensureDeferred
    async def test_enqueue_reports_depth(self, store):
        assert await store.enqueue(QUEUE, [message(1)]) == 1
        assert await store.enqueue(QUEUE, [message(2)]) == 2
        assert await store.enqueue(QUEUE, [message(3, visible_at=100.0)]) == 3
        assert await store.depth(QUEUE) == 3
        assert await store.depth("/queue/other") == 0

    @pytest_twisted.ensureDeferred
    async def test_several_messages_in_one_call_keep_their_order(self, store):
        batch = [message(1), message(2, priority=7), message(3, visible_at=50.0), message(4), message(5, priority=7)]
        assert await store.enqueue(QUEUE, batch) == 5
        assert await store.enqueue(QUEUE, [message(6)]) == 6
        # Priority first, then the order they came in; the delayed one later.
        taken = await store.reserve(QUEUE, 10, 0.0, DEFAULT_POLICY)
        assert [m.id for m in taken] == ["m2", "m5", "m1", "m4", "m6"]
        assert [m.body for m in taken] == [b"body\x00%d" % n for n in (2, 5, 1, 4, 6)]
        assert await ids(store.reserve(QUEUE, 10, 50.0, DEFAULT_POLICY)) == ["m3"]

    @pytest_twisted.ensureDeferred
    async def test_reserve_is_fifo_and_limited(self, store):
        await enqueue_all(store, [message(n) for n in range(5)])
        assert await ids(store.reserve(QUEUE, 2, 0.0, DEFAULT_POLICY)) == ["m0", "m1"]
        assert await ids(store.reserve(QUEUE, 10, 0.0, DEFAULT_POLICY)) == ["m2", "m3", "m4"]
        assert await store.reserve(QUEUE, 10, 0.0, DEFAULT_POLICY) == []
        assert await store.reserve("/queue/none", 10, 0.0, DEFAULT_POLICY) == []

    @pytest_twisted.ensureDeferred
    async def test_message_survives_the_store(self, store):
        await store.enqueue(QUEUE, [message(7, expires_at=1e12, priority=6, channel="eu/west")])
        [got] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        assert (got.id, got.destination, got.body, got.expires_at) == ("m7", QUEUE, b"body\x007", 1e12)
        assert (got.priority, got.channel) == (6, "eu/west")
        assert got.headers == {"destination": QUEUE, "n": "7", "content-type": "application/octet-stream"}

    @pytest_twisted.ensureDeferred
    async def test_content_comes_back_exactly(self, store):
        """
        Bodies are bytes, not text; header values may hold anything a
        STOMP header can (colons, newlines once unescaped, any Unicode).
        """
        headers = {
            "destination": QUEUE,
            "colon:name": "a:b:c",
            "lines": "one\ntwo\r\n",
            "unicode": "caf\u00e9 \u2603 \U0001f600",
            "empty": "",
        }
        body = bytes(range(256)) + b"\xff\xfe\x00"
        await store.enqueue(QUEUE, [Message("weird:id\n", QUEUE, headers, body)])
        [got] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        assert (got.id, got.body, got.headers) == ("weird:id\n", body, headers)
        assert list(got.headers) == list(headers)

    @pytest_twisted.ensureDeferred
    async def test_large_body_received_in_place_comes_back_exactly(self, store):
        """
        A large body the parser received in place is the C{bytearray} it
        was received into (L{stompd.codec.frame.Frame.body}); a store keeps
        its bytes as it keeps a C{bytes} body.
        """
        body = bytearray(bytes(range(256)) * 1024)
        await store.enqueue(QUEUE, [Message("large", QUEUE, {"destination": QUEUE}, body)])
        [got] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        assert (got.id, bytes(got.body)) == ("large", bytes(range(256)) * 1024)

    @pytest_twisted.ensureDeferred
    async def test_reserve_counts_and_times_deliveries(self, store):
        await store.enqueue(QUEUE, [message(1)])
        [first] = await store.reserve(QUEUE, 1, 5.0, DEFAULT_POLICY)
        assert (first.delivery_count, first.first_delivered_at, first.last_delivered_at) == (1, 5.0, 5.0)
        assert await store.release(QUEUE, [delivery(first)], None) == 1
        [again] = await store.reserve(QUEUE, 1, 8.0, DEFAULT_POLICY)
        assert (again.delivery_count, again.first_delivered_at, again.last_delivered_at) == (2, 5.0, 8.0)

    @pytest_twisted.ensureDeferred
    async def test_in_flight_is_not_visible_and_ack_removes(self, store):
        await enqueue_all(store, [message(1), message(2)])
        [m1] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        assert await store.depth(QUEUE) == 1
        assert await store.ack(QUEUE, [delivery(m1), ("unknown", 1)]) == 1
        assert await store.ack(QUEUE, [("m1", 1)]) == 0
        assert await store.release(QUEUE, [("m1", 1)], None) == 0
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m2"]

    @pytest_twisted.ensureDeferred
    async def test_release_returns_to_head_in_order(self, store):
        await enqueue_all(store, [message(n) for n in range(4)])
        m0, m1, _ = await store.reserve(QUEUE, 3, 0.0, DEFAULT_POLICY)
        assert await store.release(QUEUE, [delivery(m0), delivery(m1)], None) == 2
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m0", "m1", "m3"]

    @pytest_twisted.ensureDeferred
    async def test_unreserve_gives_back_without_counting(self, store):
        """
        Messages reserved but never written to a consumer go back as if
        never taken: a delivery counts only when a consumer saw it.
        """
        await enqueue_all(store, [message(n) for n in range(3)])
        [m0] = await store.reserve(QUEUE, 1, 1.0, DEFAULT_POLICY)
        await store.release(QUEUE, [delivery(m0)], None)
        m0, m1, m2 = await store.reserve(QUEUE, 3, 2.0, LEASED)
        assert await store.unreserve(QUEUE, [delivery(m0), delivery(m1)]) == 2
        assert await store.depth(QUEUE) == 2
        again = await store.reserve(QUEUE, 5, 3.0, DEFAULT_POLICY)
        assert [(m.id, m.delivery_count) for m in again] == [("m0", 2), ("m1", 1)]
        assert (again[0].first_delivered_at, again[1].first_delivered_at) == (1.0, 3.0)
        # The given-back delivery's lease is gone with it.
        assert await store.next_visible_at(QUEUE) == 32.0
        assert await ids(store.reserve(QUEUE, 5, 32.0, DEFAULT_POLICY)) == ["m2"]

    # Leases (visibility timeouts) and late answers

    @pytest_twisted.ensureDeferred
    async def test_delayed_release(self, store):
        await store.enqueue(QUEUE, [message(1)])
        [m1] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        await store.release(QUEUE, [delivery(m1)], 50.0)
        assert await store.reserve(QUEUE, 1, 49.0, DEFAULT_POLICY) == []
        assert await store.next_visible_at(QUEUE) == 50.0
        assert await ids(store.reserve(QUEUE, 1, 50.0, DEFAULT_POLICY)) == ["m1"]

    @pytest_twisted.ensureDeferred
    async def test_lease_runs_out(self, store):
        await enqueue_all(store, [message(1), message(2)])
        await store.reserve(QUEUE, 1, 0.0, LEASED)
        assert await store.next_visible_at(QUEUE) == 30.0
        assert await ids(store.reserve(QUEUE, 5, 29.0, DEFAULT_POLICY)) == ["m2"]
        [again] = await store.reserve(QUEUE, 5, 30.0, DEFAULT_POLICY)
        assert (again.id, again.delivery_count) == ("m1", 2)
        assert await store.next_visible_at(QUEUE) is None

    @pytest_twisted.ensureDeferred
    async def test_leases_of_different_lengths(self, store):
        await enqueue_all(store, [message(1), message(2)])
        await store.reserve(QUEUE, 1, 0.0, DeliveryPolicy(lease=50.0))
        await store.reserve(QUEUE, 1, 0.0, DeliveryPolicy(lease=10.0))
        assert await store.next_visible_at(QUEUE) == 10.0
        assert await ids(store.reserve(QUEUE, 5, 10.0, DEFAULT_POLICY)) == ["m2"]
        assert await ids(store.reserve(QUEUE, 5, 50.0, DEFAULT_POLICY)) == ["m1"]

    @pytest_twisted.ensureDeferred
    async def test_ack_before_lease_ends_keeps_it_gone(self, store):
        await store.enqueue(QUEUE, [message(1)])
        [m1] = await store.reserve(QUEUE, 1, 0.0, LEASED)
        await store.ack(QUEUE, [delivery(m1)])
        assert await store.next_visible_at(QUEUE) is None
        assert await store.reserve(QUEUE, 5, 100.0, DEFAULT_POLICY) == []

    @pytest_twisted.ensureDeferred
    async def test_late_answers_leave_the_newer_delivery_alone(self, store):
        await store.enqueue(QUEUE, [message(1)])
        [first] = await store.reserve(QUEUE, 1, 0.0, LEASED)
        old = delivery(first)
        [second] = await store.reserve(QUEUE, 1, 30.0, LEASED)
        new = delivery(second)
        assert new == ("m1", 2)
        assert await store.ack(QUEUE, [old]) == 0
        assert await store.release(QUEUE, [old], None) == 0
        assert await store.dead_letter(QUEUE, [old], "rejected") == 0
        assert await store.unreserve(QUEUE, [old]) == 0
        assert await store.reserve(QUEUE, 5, 31.0, DEFAULT_POLICY) == []
        assert await store.ack(QUEUE, [new]) == 1
        assert await store.reserve(QUEUE, 5, 100.0, DEFAULT_POLICY) == []

    @pytest_twisted.ensureDeferred
    async def test_calls_made_together_each_get_their_own_answer(self, store):
        # A store may join calls of one turn (Redis does): each still
        # counts only its own deliveries, and a delivery settled twice in
        # them counts once.
        enqueued = [store.enqueue(QUEUE, [message(n)]) for n in range(1, 5)]
        enqueued.append(store.enqueue(QUEUE, [message(5, visible_at=50.0)]))
        await DeferredList(enqueued, fireOnOneErrback=True)
        m1, m2, m3 = await store.reserve(QUEUE, 3, 0.0, LEASED)
        [m4] = await store.reserve(QUEUE, 5, 5.0, LEASED)
        acks = [
            store.ack(QUEUE, [delivery(m1), delivery(m1)]),
            store.ack(QUEUE, [delivery(m2)]),
            store.ack(QUEUE, [(m3.id, m3.delivery_count + 1), delivery(m3)]),
            store.ack(QUEUE, [delivery(m1)]),
        ]
        answers = await DeferredList(acks, fireOnOneErrback=True)
        assert [count for _, count in answers] == [1, 1, 1, 0]
        # Their leases went with them: m4's is what runs out next.
        assert await store.next_visible_at(QUEUE) == 35.0
        assert await ids(store.reserve(QUEUE, 5, 60.0, DEFAULT_POLICY)) == ["m4", "m5"]

    # Expiry

    @pytest_twisted.ensureDeferred
    async def test_expired_messages_are_dead_lettered(self, store):
        moved, reported = [], []
        store.watch(moved.append)
        store.watch_dead_letters(lambda *report: reported.append(report))
        await enqueue_all(store, [message(1, expires_at=10.0), message(2, expires_at=20.0), message(3, expires_at=5.0)])
        policy = DeliveryPolicy(dead_letter=DLQ)
        assert await ids(store.reserve(QUEUE, 5, 10.0, policy)) == ["m2"]
        assert moved == [DLQ.key]
        assert reported == [(QUEUE, "expired", DLQ.key, 2)]
        dead, _ = await store.reserve(DLQ.key, 5, 1e9, DEFAULT_POLICY)
        assert dead.headers["dead-letter-reason"] == "expired"
        assert dead.headers["original-delivery-count"] == "0"
        assert "first-delivered-at" not in dead.headers
        # A dead letter never expires.
        assert dead.expires_at is None

    @pytest_twisted.ensureDeferred
    async def test_expired_messages_are_dropped_when_asked(self, store):
        reported = []
        store.watch_dead_letters(lambda *report: reported.append(report))
        await enqueue_all(store, [message(1, expires_at=10.0), message(2)])
        policy = DeliveryPolicy(dead_letter=DLQ, dead_letter_expired=False)
        assert await ids(store.reserve(QUEUE, 5, 10.0, policy)) == ["m2"]
        assert await store.depth(DLQ.key) == 0
        assert reported == [(QUEUE, "expired", None, 1)]

    # Dead letters

    @pytest_twisted.ensureDeferred
    async def test_release_past_max_deliveries_dead_letters(self, store):
        moved, reported = [], []
        store.watch(moved.append)
        store.watch_dead_letters(lambda *report: reported.append(report))
        await store.enqueue(QUEUE, [message(1, priority=7, channel="c1")])
        policy = DeliveryPolicy(max_deliveries=2, dead_letter=DLQ)
        [m1] = await store.reserve(QUEUE, 1, 1.0, policy)
        assert await store.release(QUEUE, [delivery(m1)], None) == 1
        assert moved == reported == []
        [m1] = await store.reserve(QUEUE, 1, 2.5, policy)
        assert await store.release(QUEUE, [delivery(m1)], None) == 1
        # Moved in one step: gone from the queue, in the dead-letter queue.
        assert moved == [DLQ.key]
        assert reported == [(QUEUE, "max-deliveries", DLQ.key, 1)]
        assert await store.depth(QUEUE) == 0
        assert await store.reserve(QUEUE, 5, 3.0, DEFAULT_POLICY) == []
        assert await store.depth(DLQ.key) == 1
        [dead] = await store.reserve(DLQ.key, 5, 3.0, DEFAULT_POLICY)
        assert dead.id != "m1"
        assert (dead.destination, dead.body, dead.priority, dead.channel) == (DLQ.destination, b"body\x001", 7, "c1")
        assert dead.delivery_count == 1
        assert dead.headers == {
            "destination": DLQ.destination,
            "n": "1",
            "content-type": "application/octet-stream",
            "original-destination": QUEUE,
            "original-message-id": "m1",
            "dead-letter-reason": "max-deliveries",
            "original-delivery-count": "2",
            "first-delivered-at": "1000",
            "last-delivered-at": "2500",
        }

    @pytest_twisted.ensureDeferred
    async def test_lease_running_out_past_max_deliveries_dead_letters(self, store):
        reported = []
        store.watch_dead_letters(lambda *report: reported.append(report))
        await store.enqueue(QUEUE, [message(1)])
        policy = DeliveryPolicy(lease=5.0, max_deliveries=1, dead_letter=DLQ)
        await store.reserve(QUEUE, 1, 0.0, policy)
        assert await store.reserve(QUEUE, 5, 5.0, policy) == []
        assert reported == [(QUEUE, "max-deliveries", DLQ.key, 1)]
        [dead] = await store.reserve(DLQ.key, 5, 5.0, DEFAULT_POLICY)
        assert dead.headers["original-message-id"] == "m1"

    @pytest_twisted.ensureDeferred
    async def test_reserve_past_max_deliveries_dead_letters(self, store):
        """
        A message that came back under a looser policy dies when a stricter
        one would hand it out again.
        """
        await enqueue_all(store, [message(1), message(2)])
        [m1] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        await store.release(QUEUE, [delivery(m1)], None)
        strict = DeliveryPolicy(max_deliveries=1, dead_letter=DLQ)
        assert await ids(store.reserve(QUEUE, 5, 0.0, strict)) == ["m2"]
        assert await store.depth(DLQ.key) == 1

    @pytest_twisted.ensureDeferred
    async def test_rejected_and_without_dead_letter_queue(self, store):
        reported = []
        store.watch_dead_letters(lambda *report: reported.append(report))
        await enqueue_all(store, [message(1), message(2)])
        m1, m2 = await store.reserve(QUEUE, 2, 0.0, DeliveryPolicy(dead_letter=DLQ))
        assert await store.dead_letter(QUEUE, [delivery(m1)], "rejected") == 1
        assert reported == [(QUEUE, "rejected", DLQ.key, 1)]
        [dead] = await store.reserve(DLQ.key, 5, 0.0, DEFAULT_POLICY)
        assert dead.headers["dead-letter-reason"] == "rejected"
        assert dead.headers["original-delivery-count"] == "1"
        # No dead-letter queue: dead letters are dropped.
        await store.enqueue(QUEUE, [message(3)])
        [m3] = await store.reserve(QUEUE, 1, 0.0, DeliveryPolicy(max_deliveries=1))
        await store.release(QUEUE, [delivery(m3)], None)
        assert await store.depth(QUEUE) == 0
        assert await store.depth(DLQ.key) == 0
        assert reported[1:] == [(QUEUE, "max-deliveries", None, 1)]
        # An acknowledgement is not reported.
        assert await store.ack(QUEUE, [delivery(m2)]) == 1
        assert len(reported) == 2

    # Delay and priority

    @pytest_twisted.ensureDeferred
    async def test_delayed_messages_wait_for_their_time(self, store):
        await enqueue_all(store, [message(1, visible_at=60.0), message(2), message(3, visible_at=40.0)])
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m2"]
        assert await store.next_visible_at(QUEUE) == 40.0
        assert await store.reserve(QUEUE, 5, 39.9, DEFAULT_POLICY) == []
        assert await ids(store.reserve(QUEUE, 5, 40.0, DEFAULT_POLICY)) == ["m3"]
        await store.enqueue(QUEUE, [message(4)])
        # Where a delayed message joins the queue once visible is the store's
        # choice; that it comes is not.
        assert sorted(await ids(store.reserve(QUEUE, 5, 100.0, DEFAULT_POLICY))) == ["m1", "m4"]

    @pytest_twisted.ensureDeferred
    async def test_priority_then_fifo(self, store):
        priorities = [4, 9, 0, 9, 4, 6]
        await enqueue_all(store, [message(n, priority=p) for n, p in enumerate(priorities)])
        assert await ids(store.reserve(QUEUE, 3, 0.0, DEFAULT_POLICY)) == ["m1", "m3", "m5"]
        m0, m4 = await store.reserve(QUEUE, 2, 0.0, DEFAULT_POLICY)
        # Back to the head of its own priority, not ahead of higher ones.
        await store.enqueue(QUEUE, [message(6, priority=5)])
        await store.release(QUEUE, [delivery(m4)], None)
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m6", "m4", "m2"]

    # Channels

    @pytest_twisted.ensureDeferred
    async def test_channel_filters(self, store):
        channels = ["eu.a", None, "us", "eu.b", "eu.a"]
        await enqueue_all(store, [message(n, channel=c) for n, c in enumerate(channels)])
        assert await ids(store.reserve(QUEUE, 5, 0.0, DeliveryPolicy(channel="eu.a"))) == ["m0", "m4"]
        assert await ids(store.reserve(QUEUE, 5, 0.0, DeliveryPolicy(channel="nowhere"))) == []
        assert await ids(store.reserve(QUEUE, 1, 0.0, DeliveryPolicy(channel="eu.*"))) == ["m3"]
        # Unfiltered: every message, in order, channel or not.
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m1", "m2"]

    @pytest_twisted.ensureDeferred
    async def test_channels_with_priorities(self, store):
        await enqueue_all(
            store,
            [message(0, channel="a"), message(1, channel="b", priority=8), message(2, channel="a", priority=8)],
        )
        assert await ids(store.reserve(QUEUE, 5, 0.0, DeliveryPolicy(channel="a"))) == ["m2", "m0"]
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m1"]

    # Durable subscription bindings

    @pytest_twisted.ensureDeferred
    async def test_bindings_are_kept_replaced_and_removed(self, store):
        await store.bind("/", "durable:c1:news", "/topic/news.#")
        await store.bind("other", "vhost:other:durable:c1:news", "/topic/news")
        await store.bind("/", "durable:c1:news", "/topic/news.*")
        assert sorted(await store.bindings()) == [
            ("/", "durable:c1:news", "/topic/news.*"),
            ("other", "vhost:other:durable:c1:news", "/topic/news"),
        ]
        await store.unbind("/", "durable:c1:news")
        assert await store.bindings() == [("other", "vhost:other:durable:c1:news", "/topic/news")]

    # Queues

    @pytest_twisted.ensureDeferred
    async def test_queues_are_separate_and_delete(self, store):
        await store.enqueue(QUEUE, [message(1)])
        await store.enqueue("/queue/other", [message(2)])
        [m1] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        await store.delete(QUEUE)
        assert await store.depth(QUEUE) == 0
        assert await store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY) == []
        assert await store.release(QUEUE, [delivery(m1)], None) == 0
        assert await ids(store.reserve("/queue/other", 5, 0.0, DEFAULT_POLICY)) == ["m2"]

    @pytest_twisted.ensureDeferred
    async def test_purge_removes_what_waits_and_spares_deliveries(self, store):
        await enqueue_all(
            store, [message(1), message(2, channel="eu"), message(3, visible_at=60.0), message(4, priority=9), message(5)]
        )
        [held] = await store.reserve(QUEUE, 1, 0.0, DEFAULT_POLICY)
        assert held.id == "m4"
        assert await store.purge(QUEUE) == 4
        assert await store.depth(QUEUE) == 0
        assert await store.reserve(QUEUE, 5, 100.0, DEFAULT_POLICY) == []
        assert await store.reserve(QUEUE, 5, 100.0, DeliveryPolicy(channel="eu")) == []
        # The delivery in flight settles as usual, and comes back if released.
        assert await store.release(QUEUE, [delivery(held)], None) == 1
        assert await ids(store.reserve(QUEUE, 5, 0.0, DEFAULT_POLICY)) == ["m4"]
        await store.enqueue(QUEUE, [message(6)])
        assert await store.depth(QUEUE) == 1
        assert await store.purge("/queue/never-used") == 0
