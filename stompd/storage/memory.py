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

from stompd.interfaces import IMessageStore


class _StoredQueue:
    """
    One queue: messages ready for delivery, in flight, and waiting to become
    visible again.
    """

    __slots__ = ("ready", "in_flight", "deadlines")

    def __init__(self) -> None:
        self.ready = deque()
        # message id -> (message, lease_until or None)
        self.in_flight = {}
        # (time, tiebreak, message id, message or None): leases that run out
        # (message None: look it up in in_flight) and delayed releases.
        self.deadlines = []


@implementer(IMessageStore)
class MemoryStore:
    """
    Queues kept in a dict, for a single broker node.
    """

    def __init__(self) -> None:
        self._queues: dict[str, _StoredQueue] = {}
        self._tiebreak = itertools.count()

    def start(self):
        return succeed(None)

    def stop(self):
        return succeed(None)

    def _queue(self, name: str) -> _StoredQueue:
        stored = self._queues.get(name)
        if stored is None:
            stored = self._queues[name] = _StoredQueue()
        return stored

    def enqueue(self, queue, message):
        stored = self._queue(queue)
        stored.ready.append(message)
        return succeed(len(stored.ready))

    def _make_visible(self, stored: _StoredQueue, now: float) -> None:
        """
        Move messages whose lease ran out or whose delay is over back to the
        head of the queue, oldest deadline first.
        """
        deadlines = stored.deadlines
        due = []
        while deadlines and deadlines[0][0] <= now:
            when, _, message_id, message = heapq.heappop(deadlines)
            if message is None:
                entry = stored.in_flight.get(message_id)
                # Acked, released, or leased again since: a stale deadline.
                if entry is None or entry[1] != when:
                    continue
                del stored.in_flight[message_id]
                message = entry[0]
            due.append(message)
        stored.ready.extendleft(reversed(due))

    def reserve(self, queue, limit, now, lease_until):
        stored = self._queues.get(queue)
        if stored is None:
            return succeed([])
        if stored.deadlines:
            self._make_visible(stored, now)
        ready = stored.ready
        in_flight = stored.in_flight
        taken = []
        while ready and len(taken) < limit:
            message = ready.popleft()
            if message.expires_at is not None and message.expires_at <= now:
                continue
            message.delivery_count += 1
            in_flight[message.id] = (message, lease_until)
            if lease_until is not None:
                heapq.heappush(stored.deadlines, (lease_until, next(self._tiebreak), message.id, None))
            taken.append(message)
        return succeed(taken)

    def ack(self, queue, message_ids):
        stored = self._queues.get(queue)
        removed = 0
        if stored is not None:
            for message_id in message_ids:
                if stored.in_flight.pop(message_id, None) is not None:
                    removed += 1
        return succeed(removed)

    def release(self, queue, message_ids, visible_at):
        stored = self._queues.get(queue)
        if stored is None:
            return succeed(0)
        released = []
        for message_id in message_ids:
            entry = stored.in_flight.pop(message_id, None)
            if entry is not None:
                released.append(entry[0])
        if visible_at is None:
            stored.ready.extendleft(reversed(released))
        else:
            for message in released:
                heapq.heappush(stored.deadlines, (visible_at, next(self._tiebreak), message.id, message))
        return succeed(len(released))

    def next_visible_at(self, queue):
        stored = self._queues.get(queue)
        if stored is None:
            return succeed(None)
        deadlines = stored.deadlines
        # Drop stale lease entries so the answer is a real deadline.
        while deadlines:
            when, _, message_id, message = deadlines[0]
            if message is not None:
                return succeed(when)
            entry = stored.in_flight.get(message_id)
            if entry is not None and entry[1] == when:
                return succeed(when)
            heapq.heappop(deadlines)
        return succeed(None)

    def depth(self, queue):
        stored = self._queues.get(queue)
        return succeed(0 if stored is None else len(stored.ready))

    def delete(self, queue):
        self._queues.pop(queue, None)
        return succeed(None)


def create_store(config, reactor) -> MemoryStore:
    """
    The C{memory} entry point of group C{stompd.storage}.
    """
    return MemoryStore()
