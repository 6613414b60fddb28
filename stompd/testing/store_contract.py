"""
The contract every L{IMessageStore} must meet, as a pytest suite.

A plugin author subclasses L{StoreContract} and provides a C{store} fixture
yielding a started store (with empty queues); every built-in store runs the
same suite::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            ...
"""

import pytest_twisted
from zope.interface.verify import verifyObject

from stompd.broker.message import Message
from stompd.interfaces import IMessageStore

QUEUE = "/queue/contract"


def message(n: int, expires_at: float | None = None) -> Message:
    return Message(
        f"m{n}",
        QUEUE,
        {"destination": QUEUE, "n": str(n), "content-type": "application/octet-stream"},
        b"body\x00%d" % n,
        expires_at=expires_at,
    )


async def ids(deferred) -> list[str]:
    return [m.id for m in await deferred]


class StoreContract:
    """
    Behaviour the broker relies on from a message store.
    """

    def test_provides_interface(self, store):
        assert verifyObject(IMessageStore, store)

    @pytest_twisted.ensureDeferred
    async def test_enqueue_reports_depth(self, store):
        assert await store.enqueue(QUEUE, message(1)) == 1
        assert await store.enqueue(QUEUE, message(2)) == 2
        assert await store.depth(QUEUE) == 2
        assert await store.depth("/queue/other") == 0

    @pytest_twisted.ensureDeferred
    async def test_reserve_is_fifo_and_limited(self, store):
        for n in range(5):
            await store.enqueue(QUEUE, message(n))
        assert await ids(store.reserve(QUEUE, 2, 0.0, None)) == ["m0", "m1"]
        assert await ids(store.reserve(QUEUE, 10, 0.0, None)) == ["m2", "m3", "m4"]
        assert await store.reserve(QUEUE, 10, 0.0, None) == []
        assert await store.reserve("/queue/none", 10, 0.0, None) == []

    @pytest_twisted.ensureDeferred
    async def test_message_survives_the_store(self, store):
        await store.enqueue(QUEUE, message(7, expires_at=1e12))
        [got] = await store.reserve(QUEUE, 1, 0.0, None)
        assert (got.id, got.destination, got.body, got.expires_at) == ("m7", QUEUE, b"body\x007", 1e12)
        assert got.headers == {"destination": QUEUE, "n": "7", "content-type": "application/octet-stream"}

    @pytest_twisted.ensureDeferred
    async def test_reserve_counts_deliveries(self, store):
        await store.enqueue(QUEUE, message(1))
        [first] = await store.reserve(QUEUE, 1, 0.0, None)
        assert first.delivery_count == 1
        assert await store.release(QUEUE, ["m1"], None) == 1
        [again] = await store.reserve(QUEUE, 1, 0.0, None)
        assert again.delivery_count == 2

    @pytest_twisted.ensureDeferred
    async def test_in_flight_is_not_visible_and_ack_removes(self, store):
        await store.enqueue(QUEUE, message(1))
        await store.enqueue(QUEUE, message(2))
        await store.reserve(QUEUE, 1, 0.0, None)
        assert await store.depth(QUEUE) == 1
        assert await store.ack(QUEUE, ["m1", "unknown"]) == 1
        assert await store.ack(QUEUE, ["m1"]) == 0
        assert await store.release(QUEUE, ["m1"], None) == 0
        assert await ids(store.reserve(QUEUE, 5, 0.0, None)) == ["m2"]

    @pytest_twisted.ensureDeferred
    async def test_release_returns_to_head_in_order(self, store):
        for n in range(4):
            await store.enqueue(QUEUE, message(n))
        await store.reserve(QUEUE, 3, 0.0, None)
        assert await store.release(QUEUE, ["m0", "m1"], None) == 2
        assert await ids(store.reserve(QUEUE, 5, 0.0, None)) == ["m0", "m1", "m3"]

    @pytest_twisted.ensureDeferred
    async def test_delayed_release(self, store):
        await store.enqueue(QUEUE, message(1))
        await store.reserve(QUEUE, 1, 0.0, None)
        await store.release(QUEUE, ["m1"], 50.0)
        assert await store.reserve(QUEUE, 1, 49.0, None) == []
        assert await store.next_visible_at(QUEUE) == 50.0
        assert await ids(store.reserve(QUEUE, 1, 50.0, None)) == ["m1"]

    @pytest_twisted.ensureDeferred
    async def test_lease_runs_out(self, store):
        await store.enqueue(QUEUE, message(1))
        await store.enqueue(QUEUE, message(2))
        await store.reserve(QUEUE, 1, 0.0, 30.0)
        assert await store.next_visible_at(QUEUE) == 30.0
        assert await ids(store.reserve(QUEUE, 5, 29.0, None)) == ["m2"]
        [again] = await store.reserve(QUEUE, 5, 30.0, None)
        assert (again.id, again.delivery_count) == ("m1", 2)
        assert await store.next_visible_at(QUEUE) is None

    @pytest_twisted.ensureDeferred
    async def test_ack_before_lease_ends_keeps_it_gone(self, store):
        await store.enqueue(QUEUE, message(1))
        await store.reserve(QUEUE, 1, 0.0, 30.0)
        await store.ack(QUEUE, ["m1"])
        assert await store.next_visible_at(QUEUE) is None
        assert await store.reserve(QUEUE, 5, 100.0, None) == []

    @pytest_twisted.ensureDeferred
    async def test_expired_messages_are_dropped(self, store):
        await store.enqueue(QUEUE, message(1, expires_at=10.0))
        await store.enqueue(QUEUE, message(2, expires_at=20.0))
        assert await ids(store.reserve(QUEUE, 5, 10.0, None)) == ["m2"]

    @pytest_twisted.ensureDeferred
    async def test_queues_are_separate_and_delete(self, store):
        await store.enqueue(QUEUE, message(1))
        await store.enqueue("/queue/other", message(2))
        await store.reserve(QUEUE, 1, 0.0, None)
        await store.delete(QUEUE)
        assert await store.depth(QUEUE) == 0
        assert await store.reserve(QUEUE, 5, 0.0, None) == []
        assert await store.release(QUEUE, ["m1"], None) == 0
        assert await ids(store.reserve("/queue/other", 5, 0.0, None)) == ["m2"]
