"""
Queue dispatch: each message to exactly one consumer, round-robin, with the
store holding every message until it is acknowledged.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

# The most messages taken from the store for one consumer in one round, so
# that a single fast consumer does not starve the others of a fair turn.
_ROUND_SIZE = 64


class Queue:
    """
    One queue of a virtual host, with its consumers on this broker node.

    @ivar key: the store's name for it.
    @ivar auto_delete: delete it when its last consumer goes.
    @ivar consumers: its subscriptions, in round-robin order.
    """

    log = Logger()

    def __init__(self, key: str, store, clock, high_water: int, gate, auto_delete: bool = False) -> None:
        self.key = key
        self.auto_delete = auto_delete
        self.consumers: list = []
        self._store = store
        self._clock = clock
        self._high_water = high_water
        self._gate = gate
        self._turn = 0
        self._pumping = False
        self._wanted = False
        self._room_waiters: list[Deferred] = []

    def __repr__(self) -> str:
        return f"<Queue {self.key!r} with {len(self.consumers)} consumers>"

    def add(self, subscription) -> None:
        self.consumers.append(subscription)
        subscription.source = self
        self.wake()

    def remove(self, subscription) -> Deferred:
        """
        Take a consumer off and return what it held unacknowledged to the
        head of the queue for the others.
        """
        if subscription in self.consumers:
            self.consumers.remove(subscription)
        return self.settle(subscription, list(subscription.unacked.values()), requeue=True, forget=True)

    def settle(self, subscription, messages, requeue: bool, forget: bool = False) -> Deferred:
        """
        Acknowledge (C{requeue} false) or return to the queue (true) messages
        that C{subscription} held.
        """
        if forget:
            subscription.unacked.clear()
        if not messages:
            return succeed(None)
        ids = [message.id for message in messages]
        if requeue:
            settled = self._store.release(self.key, ids, None)
        else:
            settled = self._store.ack(self.key, ids)
        settled.addCallback(lambda _: self.wake())
        return settled

    async def put(self, message) -> None:
        """
        Store C{message} and dispatch. Returns only when the queue is below
        its high-water mark, so that the publisher, whose next frame waits
        for this, is slowed down instead of buffered without bound.
        """
        depth = await self._store.enqueue(self.key, message)
        waiter = None
        if depth >= self._high_water:
            # Registered before dispatching, which lets it go once the
            # queue is down to half.
            waiter = Deferred()
            self._room_waiters.append(waiter)
        self.wake()
        if waiter is not None:
            await waiter

    def wake(self) -> None:
        """
        Dispatch what can be dispatched now; called whenever a message
        arrives or a consumer gains credit or becomes writable again.
        """
        if self._gate.defer(self):
            return
        if self._pumping:
            self._wanted = True
            return
        Deferred.fromCoroutine(self._pump()).addErrback(
            lambda failure: self.log.failure("Dispatch from {queue} failed", failure, queue=self.key)
        )

    def _ready_consumers(self) -> list:
        """
        Consumers that can take a message now, starting with the one whose
        turn it is.
        """
        consumers = self.consumers
        start = self._turn % len(consumers) if consumers else 0
        ordered = consumers[start:] + consumers[:start]
        return [sub for sub in ordered if sub.target.writable and sub.credit() > 0]

    async def _pump(self) -> None:
        self._pumping = True
        try:
            wanted = True
            while wanted:
                self._wanted = False
                await self._dispatch_ready()
                if self._room_waiters:
                    await self._release_publishers()
                # Something arrived, or a consumer got credit, meanwhile.
                wanted = self._wanted
        finally:
            self._pumping = False

    async def _dispatch_ready(self) -> None:
        while True:
            ready = self._ready_consumers()
            if not ready:
                return
            wanted = sum(min(sub.credit(), _ROUND_SIZE) for sub in ready)
            batch = await self._store.reserve(self.key, wanted, self._clock.seconds(), None)
            if batch:
                await self._deal(batch, ready)
            if len(batch) < wanted:
                # The store has no more for now; what arrives meanwhile wakes
                # us again.
                return

    async def _deal(self, batch: list, ready: list) -> None:
        """
        Hand out a batch one message per consumer in turn. Consumers that
        became full or unwritable meanwhile are skipped; what nobody can take
        goes back to the head of the queue.
        """
        auto_acked = []
        index = 0
        position = 0
        last_served = None
        while index < len(batch) and ready:
            subscription = ready[position % len(ready)]
            if not (subscription.target.writable and subscription.credit() > 0) or subscription.source is not self:
                ready.remove(subscription)
                continue
            message = batch[index]
            index += 1
            position += 1
            last_served = subscription
            if subscription.acks:
                subscription.unacked[message.id] = message
            else:
                auto_acked.append(message.id)
            subscription.target.deliver(subscription, message)
        if last_served is not None and last_served in self.consumers:
            # The next round starts after the consumer served last.
            self._turn = self.consumers.index(last_served) + 1
        if auto_acked:
            await self._store.ack(self.key, auto_acked)
        if index < len(batch):
            await self._store.release(self.key, [message.id for message in batch[index:]], None)

    async def _release_publishers(self) -> None:
        depth = await self._store.depth(self.key)
        if depth < self._high_water // 2 or not self.consumers and depth < self._high_water:
            self.close()

    def close(self) -> None:
        """
        Let waiting publishers go on: the queue has room, or is being
        deleted.
        """
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            waiter.callback(None)
