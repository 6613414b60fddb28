"""
Queue dispatch: each message to exactly one consumer, round-robin, with the
store holding every message until it is acknowledged.
"""

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from stompd.broker.immediate import start, then
from stompd.broker.metrics import DestinationCounts
from stompd.broker.policy import REJECTED
from stompd.broker.subscription import Delivery
from stompd.errors import StompError, StorageError

# The most messages taken from the store for one consumer in one round, so
# that a single fast consumer does not starve the others of a fair turn.
_ROUND_SIZE = 64

# Seconds between looks at the depth of a queue whose publishers wait for
# room: consumers on other nodes sharing the store drain it unseen.
ROOM_CHECK_INTERVAL = 0.5

# What a SEND to a full queue does ([queues] overflow), and the reason a
# message dead-lettered for it carries.
REJECT_OVERFLOW = "reject"
DROP_OLDEST = "drop-oldest"
MAX_DEPTH = "max-depth"


class Overflow:
    """
    A queue's depth limit: C{max_depth}, the C{action} at it, the
    L{DeliveryPolicy} its oldest messages are taken off with (naming the
    dead-letter queue for C{dead-letter}), and the log of its hits.
    """

    __slots__ = ("max_depth", "action", "policy", "log")

    def __init__(self, max_depth: int, action: str, policy, log) -> None:
        self.max_depth = max_depth
        self.action = action
        self.policy = policy
        self.log = log


# What an ACK or NACK does with the deliveries it settles.
ACK = "ack"
RELEASE = "release"
REJECT = "reject"


class Queue:
    """
    One queue of a virtual host, with its consumers on this broker node.

    @ivar key: the store's name for it.
    @ivar auto_delete: delete it when its last consumer goes.
    @ivar consumers: its subscriptions, in round-robin order.
    """

    log = Logger()

    def __init__(
        self, key: str, store, clock, high_water: int, gate, auto_delete: bool = False, overflow: "Overflow | None" = None
    ) -> None:
        self.key = key
        self._overflow = overflow
        # Messages waiting, as the store last said.
        self._depth = 0
        # What it did here, and its rates as the broker last sampled them.
        self.counts = DestinationCounts()
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
        # A wake-up for the next delayed message; and whether the store may
        # hold messages that become visible later, which only then is asked.
        self._timer = None
        self._may_have_later = True
        self._room_timer = None

    def __repr__(self) -> str:
        return f"<Queue {self.key!r} with {len(self.consumers)} consumers>"

    def depth_seen(self, depth: int) -> None:
        """
        The store said how many messages wait (asked by the API).
        """
        self._depth = depth

    def purged(self) -> None:
        """
        The store removed every waiting message (a purge).
        """
        self._depth = 0

    @property
    def depth(self) -> int:
        """
        Messages waiting, as this node last saw: what the store said after
        the last SEND, less what was taken since, plus what came back.
        """
        return self._depth

    def add(self, subscription) -> None:
        self.consumers.append(subscription)
        subscription.source = self
        self.wake()

    def remove(self, subscription) -> Deferred | None:
        """
        Take a consumer off and return what it held unacknowledged to the
        head of the queue for the others.

        @return: as L{settle}.
        """
        if subscription in self.consumers:
            self.consumers.remove(subscription)
        if subscription.lease_timer is not None:
            if subscription.lease_timer.active():
                subscription.lease_timer.cancel()
            subscription.lease_timer = None
        held = list(subscription.unacked.values())
        subscription.unacked.clear()
        return self.settle(subscription, held, RELEASE)

    def settle(self, subscription, deliveries: list, action: str, visible_at: float | None = None) -> Deferred | None:
        """
        End C{deliveries} that C{subscription} held: L{ACK} deletes their
        messages, L{RELEASE} makes them visible again (at once, or from
        C{visible_at}), L{REJECT} dead-letters them. Deliveries that are no
        longer current (their lease ran out and the message went to someone
        else) are left alone by the store.

        @return: C{None} once the store has done it (at once, for the
            memory store), else a Deferred firing then.
        """
        if not deliveries:
            return None
        tokens = [(delivery.message.id, delivery.count) for delivery in deliveries]
        if action == ACK:
            self.counts.acked += len(tokens)
            settled = self._store.ack(self.key, tokens)
            if not settled.called:
                # The consumer has room again already: its next messages
                # are reserved behind the ACK instead of a round trip after.
                self.wake()
        elif action == RELEASE:
            settled = self._store.release(self.key, tokens, visible_at)
            self._depth += len(tokens)
            if visible_at is not None:
                self._wake_at(visible_at)
        else:
            settled = self._store.dead_letter(self.key, tokens, REJECTED)
        return then(settled, self._settled, len(tokens))

    def _settled(self, count: int, asked: int) -> None:
        if count < asked:
            self.log.debug("{late} late acknowledgements in {queue} changed nothing", late=asked - count, queue=self.key)
        self.wake()

    def put(self, messages: list, on_full=None) -> Deferred | None:
        """
        Store C{messages} (in order, in one store call) and dispatch.

        @return: C{None} if it is stored already (the memory store) and the
            queue is below its high-water mark; else a Deferred firing when
            both are true, so that the publisher, whose next frame waits for
            this, is slowed down instead of buffered without bound.
            C{on_full} is called with the Deferred it waits for, for a
            publisher that reads on while messages are stored.
        @raise StompError: the queue is full (C{overflow = "reject"}), if
            the store said so at once.
        """
        self.counts.published += len(messages)
        overflow = self._overflow
        if overflow is not None and overflow.action == REJECT_OVERFLOW and self._depth + len(messages) > overflow.max_depth:
            # Full when last seen: ask again, since consumers drain it unseen.
            return then(self._store.depth(self.key), self._put_if_room, messages, on_full)
        # Callbacks rather than a coroutine: this is every SEND's path.
        return then(self._store.enqueue(self.key, messages), self._stored, messages, on_full)

    def _put_if_room(self, depth: int, messages: list, on_full) -> Deferred | None:
        self._depth = depth
        overflow = self._overflow
        room = overflow.max_depth - depth
        if room < len(messages):
            refused = messages[max(room, 0)]
            if room > 0:
                # Those that fit are stored; the first that does not is refused.
                self._store.enqueue(self.key, messages[:room]).addCallbacks(
                    self._stored,
                    lambda failure: self.log.failure("Storing in {queue}", failure, queue=self.key),
                    callbackArgs=(messages[:room], None),
                )
            overflow.log.hit("max-depth", f"{self.key} holds {depth} messages; a SEND was refused")
            raise StompError(
                "queue full",
                f"{refused.destination} holds {overflow.max_depth} messages ([queues] max-depth); try again later.",
            )
        return then(self._store.enqueue(self.key, messages), self._stored, messages, on_full)

    def _stored(self, depth: int, messages: list, on_full) -> Deferred | None:
        self._depth = depth
        overflow = self._overflow
        if overflow is not None and depth > overflow.max_depth and overflow.action != REJECT_OVERFLOW:
            self._trim(depth - overflow.max_depth)
        waiter = None
        if depth >= self._high_water:
            # Registered before dispatching, which lets it go once the
            # queue is down to half.
            waiter = Deferred()
            self._room_waiters.append(waiter)
            if self._room_timer is None:
                self._room_timer = self._clock.callLater(ROOM_CHECK_INTERVAL, self._check_room)
            if on_full is not None:
                on_full(waiter)
        for message in messages:
            if message.visible_at is not None:
                self._wake_at(message.visible_at)
        self.wake()
        # Returned, the put's Deferred waits for it.
        return waiter

    def _trim(self, excess: int) -> None:
        """
        Take the oldest C{excess} waiting messages off the queue: dropped,
        or dead-lettered with reason C{max-depth}.
        """
        overflow = self._overflow
        overflow.log.hit("max-depth", f"{self.key} went over {overflow.max_depth} messages; {overflow.action}")
        Deferred.fromCoroutine(self._take_oldest(excess)).addErrback(
            lambda failure: self.log.failure("Trimming {queue} to max-depth", failure, queue=self.key)
        )

    async def _take_oldest(self, excess: int) -> None:
        overflow = self._overflow
        oldest = await self._store.reserve(self.key, excess, self._clock.seconds(), overflow.policy)
        tokens = [(message.id, message.delivery_count) for message in oldest]
        if not tokens:
            return
        if overflow.action == DROP_OLDEST:
            await self._store.ack(self.key, tokens)
        else:
            await self._store.dead_letter(self.key, tokens, MAX_DEPTH)
        self._depth -= len(tokens)

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
        # With a store that answers at once, this call is the whole pump.
        try:
            pumping = start(self._pump())
        except Exception:
            self._pump_failed(Failure())
            return
        if pumping is not None:
            pumping.addErrback(self._pump_failed)

    def _pump_failed(self, failure) -> None:
        if failure.check(StorageError):
            # The store is away: dispatch resumes when it says it is back.
            self.log.warn("Dispatch from {queue} stopped: {problem}", queue=self.key, problem=failure.value.detail)
        else:
            self.log.failure("Dispatch from {queue} failed", failure, queue=self.key)

    def work_arrived(self) -> None:
        """
        The store says messages may be deliverable, or become so later
        (another node's delayed message, a dead letter moved in): dispatch,
        and ask the store again when the next one becomes visible.
        """
        self._may_have_later = True
        self.wake()

    def _wake_at(self, when: float) -> None:
        """
        Dispatch again at C{when}, when a message becomes visible.
        """
        self._may_have_later = True
        timer = self._timer
        if timer is not None and timer.active():
            if timer.getTime() <= when:
                return
            timer.cancel()
        self._timer = self._clock.callLater(max(0.0, when - self._clock.seconds()), self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self.wake()

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
                drained = await self._dispatch_ready()
                if drained and self._may_have_later:
                    await self._schedule_later()
                if self._room_waiters:
                    await self._release_publishers()
                # Something arrived, or a consumer got credit, meanwhile.
                wanted = self._wanted
        finally:
            self._pumping = False

    async def _dispatch_ready(self) -> bool:
        """
        Deal messages to every consumer that can take some, until they are
        full or the store has no more for them.

        @return: whether consumers were left wanting (the store ran dry).
        """
        while True:
            ready = self._ready_consumers()
            if not ready:
                return False
            # One reserve per policy: consumers with the same visibility
            # timeout, channel filter and dead-letter rules share batches.
            groups: dict = {}
            for subscription in ready:
                groups.setdefault(subscription.policy, []).append(subscription)
            more = False
            for policy, group in groups.items():
                wanted = sum(min(sub.credit(), _ROUND_SIZE) for sub in group)
                now = self._clock.seconds()
                batch = await self._store.reserve(self.key, wanted, now, policy)
                if batch:
                    self._depth = max(0, self._depth - len(batch))
                    await self._deal(batch, group, now, policy)
                if len(batch) >= wanted:
                    more = True
            if not more:
                # The store has no more for now; what arrives meanwhile
                # wakes us again.
                return True

    async def _deal(self, batch: list, ready: list, now: float, policy) -> None:
        """
        Hand out a batch one message per consumer in turn. Consumers that
        became full or unwritable meanwhile are skipped; what nobody can take
        goes back to the store uncounted.
        """
        lease_until = None if policy.lease is None else now + policy.lease
        auto_acked: list = []
        # Held while dealing, never across a store call: each consumer's
        # share of the batch is written to it in one piece.
        gate = self._gate
        gate.hold()
        try:
            index, last_served = self._deal_out(batch, ready, lease_until, policy, auto_acked)
        finally:
            gate.release()
        self.counts.delivered += index
        if last_served is not None and last_served in self.consumers:
            # The next round starts after the consumer served last.
            self._turn = self.consumers.index(last_served) + 1
        if auto_acked:
            await self._store.ack(self.key, auto_acked)
        if index < len(batch):
            await self._store.unreserve(self.key, [(message.id, message.delivery_count) for message in batch[index:]])
            self._depth += len(batch) - index

    def _deal_out(self, batch: list, ready: list, lease_until: float | None, policy, auto_acked: list) -> tuple:
        """
        The dealing itself: returns how many of C{batch} were delivered and
        to whom last; C{auto_acked} gets the deliveries that need no ACK.
        """
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
                subscription.unacked[subscription.ack_id(message)] = Delivery(message, message.delivery_count, lease_until)
                if lease_until is not None and subscription.lease_timer is None:
                    subscription.lease_timer = self._clock.callLater(policy.lease, self._leases_ran_out, subscription)
            else:
                auto_acked.append((message.id, message.delivery_count))
            subscription.target.deliver(subscription, message)
        return index, last_served

    def _leases_ran_out(self, subscription) -> None:
        """
        The visibility timeout of C{subscription}'s oldest deliveries ended:
        they go back to the queue for anyone (this consumer included), and
        the consumer gets their prefetch credit back.
        """
        subscription.lease_timer = None
        if subscription.source is not self:
            return
        now = self._clock.seconds()
        unacked = subscription.unacked
        lapsed = []
        # Deliveries are in delivery order and share one lease length, so
        # the oldest leases are first.
        for ack_id, delivery in unacked.items():
            if delivery.lease_until > now:
                break
            lapsed.append(ack_id)
        deliveries = []
        for ack_id in lapsed:
            deliveries.append(unacked.pop(ack_id))
            subscription.lapse(ack_id)
        if unacked:
            oldest = next(iter(unacked.values()))
            subscription.lease_timer = self._clock.callLater(oldest.lease_until - now, self._leases_ran_out, subscription)
        if deliveries:
            self.log.debug("{count} deliveries from {queue} timed out", count=len(deliveries), queue=self.key)
            released = self.settle(subscription, deliveries, RELEASE)
            if released is not None:
                released.addErrback(
                    lambda failure: self.log.failure(
                        "Releasing timed-out messages of {queue} failed", failure, queue=self.key
                    )
                )

    async def _schedule_later(self) -> None:
        """
        Consumers wait and the store has nothing visible for them: set a
        timer for when something becomes visible, if anything will.
        """
        when = await self._store.next_visible_at(self.key)
        if when is None:
            self._may_have_later = False
        else:
            self._wake_at(when)

    def _check_room(self) -> None:
        self._room_timer = None
        if self._room_waiters:
            self._room_timer = self._clock.callLater(ROOM_CHECK_INTERVAL, self._check_room)
            self.wake()

    async def _release_publishers(self) -> None:
        depth = await self._store.depth(self.key)
        if depth < self._high_water // 2 or not self.consumers and depth < self._high_water:
            self._let_publishers_go()

    def _let_publishers_go(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def close(self) -> None:
        """
        The queue is being deleted: let waiting publishers go on, and stop
        waiting for delayed messages.
        """
        for timer in (self._timer, self._room_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._room_timer = None
        self._let_publishers_go()
