"""
The embedded default store: queues in this process's memory.

Nothing survives a restart. Every method answers at once with an already
fired Deferred, so the broker's dispatch runs without a reactor turn.
"""

import heapq
import itertools
from collections import deque

from twisted.internet.defer import succeed
from zope.interface import implementer

from stompd.broker.message import dead_letter_of
from stompd.broker.policy import EXPIRED, MAX_DELIVERIES
from stompd.errors import ConfigError
from stompd.interfaces import IMessageStore


class _Ready:
    """
    The messages of one queue that may be delivered now: by priority, then
    by channel, each channel in order. Most queues use one priority and no
    channel, which is one deque.

    Every entry is C{(sequence, message)}; messages of several channels
    (or a filter matching several) are taken oldest sequence first.
    """

    __slots__ = ("_levels", "count")

    def __init__(self) -> None:
        # priority -> channel -> deque of (sequence, message)
        self._levels: dict[int, dict] = {}
        self.count = 0

    def _lane(self, message) -> deque:
        level = self._levels.get(message.priority)
        if level is None:
            level = self._levels[message.priority] = {}
        lane = level.get(message.channel)
        if lane is None:
            lane = level[message.channel] = deque()
        return lane

    def append(self, sequence: int, message) -> None:
        level = self._levels.get(message.priority)
        lane = None if level is None else level.get(message.channel)
        if lane is None:
            lane = self._lane(message)
        lane.append((sequence, message))
        self.count += 1

    def push_front(self, entries: list) -> None:
        """
        Put C{entries} back at the head of their lanes, in their order.
        """
        for entry in reversed(entries):
            self._lane(entry[1]).appendleft(entry)
        self.count += len(entries)

    def take(self, policy, limit: int) -> list:
        """
        Remove and return up to C{limit} entries that C{policy} reads,
        highest priority first, oldest first within a priority.
        """
        levels = self._levels
        taken = []
        for priority in sorted(levels, reverse=True) if len(levels) > 1 else tuple(levels):
            level = levels[priority]
            if policy.channel is None and len(level) == 1:
                # The common case: the whole level is one lane.
                lane = next(iter(level.values()))
                while lane and len(taken) < limit:
                    taken.append(lane.popleft())
            else:
                while len(taken) < limit:
                    heads = [(lane[0][0], channel) for channel, lane in level.items() if lane and policy.reads(channel)]
                    if not heads:
                        break
                    channel = min(heads)[1] if len(heads) > 1 else heads[0][1]
                    lane = level[channel]
                    taken.append(lane.popleft())
                    if not lane and channel is not None:
                        # Channel names are the clients' to invent: keep
                        # only the lanes in use. The lane without a channel
                        # stays, so a busy queue does not remake it.
                        del level[channel]
            if len(taken) >= limit:
                break
        self.count -= len(taken)
        return taken


# An in-flight delivery: (sequence, message, count, lease_until, policy,
# previous_last). count is the message's delivery count when delivered, what
# names this delivery, so that a late answer to an older one changes nothing;
# previous_last is its last_delivered_at before, for unreserve. A tuple, not
# a class: one is made per delivery.
_SEQUENCE, _MESSAGE, _COUNT, _LEASE_UNTIL, _POLICY, _PREVIOUS_LAST = range(6)


class _Moves:
    """
    What one store call moved by itself: the dead-letter queues that got
    messages, and C{(queue, reason, dead-letter queue or None)} of each
    message taken out without an acknowledgement, for the watchers.
    """

    __slots__ = ("queues", "dead")

    def __init__(self) -> None:
        self.queues: set = set()
        self.dead: list = []


class _StoredQueue:
    """
    One queue: messages ready for delivery, in flight, and not visible yet.
    """

    __slots__ = ("ready", "in_flight", "leases", "delayed")

    def __init__(self) -> None:
        self.ready = _Ready()
        # message id -> in-flight entry (see _SEQUENCE)
        self.in_flight: dict[str, tuple] = {}
        # lease length -> deque of (lease_until, message id, count): one
        # deque per length stays in deadline order without a heap.
        self.leases: dict[float, deque] = {}
        # heap of (visible_at, sequence, at_head, message): delayed
        # messages and delayed releases.
        self.delayed: list = []


@implementer(IMessageStore)
class MemoryStore:
    """
    Queues kept in a dict, for a single broker node.
    """

    shared = False

    def __init__(self) -> None:
        self._queues: dict[str, _StoredQueue] = {}
        self._sequence = itertools.count()
        self._watchers: list = []
        self._dead_letter_watchers: list = []
        # durable subscription queue -> (vhost, topic pattern)
        self._bindings: dict[str, tuple[str, str]] = {}

    def start(self):
        return succeed(None)

    def stop(self):
        return succeed(None)

    def watch(self, callback) -> None:
        self._watchers.append(callback)

    def watch_dead_letters(self, callback) -> None:
        self._dead_letter_watchers.append(callback)

    def watch_topics(self, callback) -> None:
        # One node: nobody else publishes.
        pass

    def publish(self, vhost, topic, message):
        return succeed(None)

    def bind(self, vhost, queue, pattern):
        self._bindings[queue] = (vhost, pattern)
        return succeed(None)

    def unbind(self, vhost, queue):
        self._bindings.pop(queue, None)
        return succeed(None)

    def bindings(self):
        return succeed([(vhost, queue, pattern) for queue, (vhost, pattern) in self._bindings.items()])

    def watch_bindings(self, callback) -> None:
        pass

    def _queue(self, name: str) -> _StoredQueue:
        stored = self._queues.get(name)
        if stored is None:
            stored = self._queues[name] = _StoredQueue()
        return stored

    def _add(self, stored: _StoredQueue, message) -> None:
        if message.visible_at is not None:
            heapq.heappush(stored.delayed, (message.visible_at, next(self._sequence), False, message))
        else:
            stored.ready.append(next(self._sequence), message)

    def enqueue(self, queue, messages):
        stored = self._queues.get(queue) or self._queue(queue)
        ready = stored.ready
        sequence = self._sequence
        for message in messages:
            if message.visible_at is None:
                # _add without a call: this is every SEND's path.
                ready.append(next(sequence), message)
            else:
                self._add(stored, message)
        return succeed(ready.count + len(stored.delayed))

    def _advance(self, queue: str, stored: _StoredQueue, now: float, moves: _Moves) -> None:
        """
        Apply what time did: leases that ran out come back (or die), and
        delayed messages become ready.
        """
        lapsed = []
        for lane in stored.leases.values():
            while lane:
                entry = self._current(stored, *lane[0])
                if entry is not None and entry[_LEASE_UNTIL] > now:
                    break
                # Settled deliveries go too, not only at their deadline, so
                # a lane holds little more than what is in flight.
                lane.popleft()
                if entry is not None:
                    del stored.in_flight[entry[_MESSAGE].id]
                    lapsed.append(entry)
        # Oldest first at the head of the queue.
        lapsed.sort(key=lambda entry: entry[_SEQUENCE])
        for entry in reversed(lapsed):
            self._come_back(queue, stored, entry, None, moves)
        delayed = stored.delayed
        if delayed and delayed[0][0] <= now:
            front = []
            while delayed and delayed[0][0] <= now:
                _, sequence, at_head, message = heapq.heappop(delayed)
                if at_head:
                    front.append((sequence, message))
                else:
                    stored.ready.append(sequence, message)
            stored.ready.push_front(front)

    @staticmethod
    def _current(stored: _StoredQueue, lease_until: float, message_id: str, count: int) -> tuple | None:
        """
        The delivery a lease entry stands for, if it is still in flight
        under that lease; C{None} for one settled or delivered again since.
        """
        entry = stored.in_flight.get(message_id)
        if entry is not None and entry[_COUNT] == count and entry[_LEASE_UNTIL] == lease_until:
            return entry
        return None

    def _come_back(self, queue: str, stored: _StoredQueue, entry: tuple, visible_at, moves: _Moves) -> None:
        """
        A delivery ended without an ACK: the message is ready again (at the
        head, or once C{visible_at} comes), unless it has been delivered as
        often as its policy allows.
        """
        sequence, message, _, _, policy, _ = entry
        if policy.max_deliveries and message.delivery_count >= policy.max_deliveries:
            self._bury(queue, message, policy, MAX_DELIVERIES, moves)
        elif visible_at is None:
            stored.ready.push_front([(sequence, message)])
        else:
            heapq.heappush(stored.delayed, (visible_at, sequence, True, message))

    def _bury(self, queue: str, message, policy, reason: str, moves: _Moves) -> None:
        """
        Move C{message} to its policy's dead-letter queue, or drop it if
        there is none. It is already out of C{queue}.
        """
        target = policy.dead_letter
        moves.dead.append((queue, reason, None if target is None else target.key))
        if target is None:
            return
        self._add(self._queue(target.key), dead_letter_of(message, target.destination, reason))
        moves.queues.add(target.key)

    def _announce(self, moves: _Moves) -> None:
        for key in moves.queues:
            for callback in self._watchers:
                callback(key)
        if moves.dead:
            counted: dict = {}
            for what in moves.dead:
                counted[what] = counted.get(what, 0) + 1
            for (queue, reason, target), count in counted.items():
                for callback in self._dead_letter_watchers:
                    callback(queue, reason, target, count)

    def reserve(self, queue, limit, now, policy):
        stored = self._queues.get(queue)
        if stored is None:
            return succeed([])
        moves = _Moves()
        self._advance(queue, stored, now, moves)
        ready = stored.ready
        in_flight = stored.in_flight
        lease_until = None if policy.lease is None else now + policy.lease
        max_deliveries = policy.max_deliveries
        taken = []
        while ready.count and len(taken) < limit:
            entries = ready.take(policy, limit - len(taken))
            if not entries:
                break
            for sequence, message in entries:
                if message.expires_at is not None and message.expires_at <= now:
                    if policy.dead_letter_expired:
                        self._bury(queue, message, policy, EXPIRED, moves)
                    else:
                        moves.dead.append((queue, EXPIRED, None))
                    continue
                if max_deliveries and message.delivery_count >= max_deliveries:
                    self._bury(queue, message, policy, MAX_DELIVERIES, moves)
                    continue
                previous_last = message.last_delivered_at
                message.delivery_count += 1
                message.last_delivered_at = now
                if message.first_delivered_at is None:
                    message.first_delivered_at = now
                in_flight[message.id] = (sequence, message, message.delivery_count, lease_until, policy, previous_last)
                taken.append(message)
        if lease_until is not None and taken:
            lane = stored.leases.get(policy.lease)
            if lane is None:
                lane = stored.leases[policy.lease] = deque()
            lane.extend((lease_until, message.id, message.delivery_count) for message in taken)
        self._announce(moves)
        return succeed(taken)

    def _settle(self, queue, deliveries) -> tuple[_StoredQueue | None, list[tuple]]:
        """
        Take the current deliveries among C{deliveries} out of flight.
        """
        stored = self._queues.get(queue)
        if stored is None:
            return None, []
        in_flight = stored.in_flight
        settled = []
        for message_id, count in deliveries:
            entry = in_flight.get(message_id)
            if entry is not None and entry[_COUNT] == count:
                del in_flight[message_id]
                settled.append(entry)
        return stored, settled

    def ack(self, queue, deliveries):
        return succeed(len(self._settle(queue, deliveries)[1]))

    def release(self, queue, deliveries, visible_at):
        stored, settled = self._settle(queue, deliveries)
        moves = _Moves()
        for entry in reversed(settled):
            self._come_back(queue, stored, entry, visible_at, moves)
        self._announce(moves)
        return succeed(len(settled))

    def unreserve(self, queue, deliveries):
        stored, settled = self._settle(queue, deliveries)
        front = []
        for entry in settled:
            sequence, message, _, _, _, previous_last = entry
            message.delivery_count -= 1
            message.last_delivered_at = previous_last
            if not message.delivery_count:
                message.first_delivered_at = None
            front.append((sequence, message))
        if front:
            stored.ready.push_front(front)
        return succeed(len(settled))

    def dead_letter(self, queue, deliveries, reason):
        _, settled = self._settle(queue, deliveries)
        moves = _Moves()
        for entry in settled:
            self._bury(queue, entry[_MESSAGE], entry[_POLICY], reason, moves)
        self._announce(moves)
        return succeed(len(settled))

    def next_visible_at(self, queue):
        stored = self._queues.get(queue)
        if stored is None:
            return succeed(None)
        times = []
        for lane in stored.leases.values():
            # Drop settled deliveries so the answer is a real deadline.
            while lane:
                if self._current(stored, *lane[0]) is not None:
                    times.append(lane[0][0])
                    break
                lane.popleft()
        if stored.delayed:
            times.append(stored.delayed[0][0])
        return succeed(min(times) if times else None)

    def depth(self, queue):
        stored = self._queues.get(queue)
        return succeed(0 if stored is None else stored.ready.count + len(stored.delayed))

    def purge(self, queue):
        stored = self._queues.get(queue)
        if stored is None:
            return succeed(0)
        removed = stored.ready.count + len(stored.delayed)
        stored.ready = _Ready()
        stored.delayed = []
        return succeed(removed)

    def delete(self, queue):
        self._queues.pop(queue, None)
        return succeed(None)


def parse_config(table: dict) -> None:
    """
    C{[storage.memory]}: the memory store has no settings.
    """
    for key in table:
        raise ConfigError(f"{key}: unknown key (the memory store has no settings)")


def create_store(config, reactor, settings) -> MemoryStore:
    """
    The C{memory} entry point of group C{stompd.storage}.
    """
    return MemoryStore()


create_store.parse_config = parse_config
