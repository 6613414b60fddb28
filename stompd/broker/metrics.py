"""
What the broker counts, for the metrics endpoint: plain integers bumped on
the hot paths (a dict lookup and an add), read only when scraped.
"""

from bisect import bisect_left
from collections import Counter

from stompd.broker.immediate import NOT_YET, result_now
from stompd.broker.policy import EXPIRED
from stompd.interfaces import ITimedStore


class SessionCounts:
    """
    What one connection did, in plain integers: the hottest counts are
    bumped here (an attribute add), and reach the broker's totals when the
    connection goes, or when the metrics are read. Frames by command (but
    MESSAGE) go straight to the broker's L{BrokerCounters}: a shared dict
    costs the same add, and an idle connection need not hold four.
    """

    __slots__ = (
        "delivered",
        "redelivered",
        "published",
        "acked",
        "nacked",
        "received_bytes",
        "sent_bytes",
        "message_bytes",
    )

    def __init__(self) -> None:
        self.delivered = self.redelivered = self.published = self.acked = self.nacked = 0
        # Everything read; everything written but MESSAGE frames; MESSAGE
        # frames written.
        self.received_bytes = self.sent_bytes = self.message_bytes = 0


_MESSAGE_EVENTS = ("delivered", "redelivered", "published", "acked", "nacked")


class BrokerCounters:
    """
    Counters of one broker process, since it started.

    @ivar connections_opened: by transport (C{tcp}, C{websocket}).
    @ivar connections_closed: by transport.
    @ivar frames_received: by command.
    @ivar frames_sent: by command.
    @ivar frame_bytes_received: bytes of the frames received, by command.
    @ivar frame_bytes_sent: bytes of the frames sent, by command.
    @ivar bytes_received: by transport.
    @ivar bytes_sent: by transport.
    @ivar messages: by event: C{published}, C{delivered}, C{redelivered},
        C{acked}, C{nacked}; and, as the store reported them, C{expired}
        (dead-lettered or dropped) and C{dead_lettered}.
    @ivar dead_lettered: messages moved to a dead-letter queue, by reason.
    @ivar dropped: messages taken out of a queue without an ACK and without
        a dead-letter queue to go to, by reason.
    @ivar errors: ERROR frames sent, by their C{message}.
    """

    def taken_out(self, reason: str, dead_letter_queue, count: int) -> None:
        """
        The store took C{count} messages out of a queue without an ACK:
        moved to C{dead_letter_queue}, or dropped when that is C{None}
        (see L{stompd.interfaces.IMessageStore.watch_dead_letters}).
        """
        if dead_letter_queue is None:
            self.dropped[reason] += count
        else:
            self.dead_lettered[reason] += count
            self.messages["dead_lettered"] += count
        if reason == EXPIRED:
            self.messages["expired"] += count

    def fold(self, kind: str, counts: SessionCounts) -> None:
        """
        Add a connection's counts to the totals (it is gone).
        """
        self._add(self, kind, counts)

    @staticmethod
    def _add(into, kind: str, counts: SessionCounts) -> None:
        for event in _MESSAGE_EVENTS:
            into.messages[event] += getattr(counts, event)
        into.bytes_received[kind] += counts.received_bytes
        into.bytes_sent[kind] += counts.sent_bytes + counts.message_bytes
        into.frames_sent["MESSAGE"] += counts.delivered + counts.redelivered
        into.frame_bytes_sent["MESSAGE"] += counts.message_bytes

    def totals(self, sessions) -> "BrokerCounters":
        """
        The totals with the connections still open (C{sessions}) added: a
        new object, for reading.
        """
        total = BrokerCounters()
        for name in _TOTALS:
            getattr(total, name).update(getattr(self, name))
        for session in sessions:
            self._add(total, session.kind, session.counts)
        return total

    def __init__(self) -> None:
        self.connections_opened: Counter = Counter()
        self.connections_closed: Counter = Counter()
        self.frames_received: Counter = Counter()
        self.frames_sent: Counter = Counter()
        self.frame_bytes_received: Counter = Counter()
        self.frame_bytes_sent: Counter = Counter()
        self.bytes_received: Counter = Counter()
        self.bytes_sent: Counter = Counter()
        self.messages: Counter = Counter()
        self.dead_lettered: Counter = Counter()
        self.dropped: Counter = Counter()
        self.errors: Counter = Counter()


_TOTALS = tuple(vars(BrokerCounters()))


class DestinationCounts:
    """
    What one destination did on this node: messages published to it,
    delivered from it and acknowledged (queues), in plain integers bumped on
    the hot paths; and their rates per second between the broker's last two
    samples.

    @ivar rates: C{(published, delivered, acked)} per second.
    """

    __slots__ = ("published", "delivered", "acked", "rates", "_sampled")

    def __init__(self) -> None:
        self.published = self.delivered = self.acked = 0
        self.rates = (0.0, 0.0, 0.0)
        # (time, (published, delivered, acked)) at the last sample.
        self._sampled: tuple | None = None

    def sample(self, now: float) -> bool:
        """
        Update L{rates} with what happened since the last sample.

        @return: whether anything happened since then.
        """
        current = (self.published, self.delivered, self.acked)
        sampled = self._sampled
        active = sampled is None or current != sampled[1]
        if sampled is not None and now > sampled[0]:
            elapsed = now - sampled[0]
            self.rates = tuple((count - before) / elapsed for count, before in zip(current, sampled[1]))
        self._sampled = (now, current)
        return active


# Seconds: the buckets of the storage latency histogram.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """
    Counts of observations per bucket (not cumulative), their sum and count.
    """

    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float, times: int = 1) -> None:
        """
        Count C{times} observations of C{seconds} each.
        """
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += times
        self.total += seconds * times
        self.count += times


# The store calls that are timed: those on the way of messages.
_TIMED = frozenset(("enqueue", "reserve", "ack", "release", "unreserve", "dead_letter", "depth", "purge"))


class TimedStore:
    """
    A store as the broker sees it: the same store, its message calls timed
    into L{latencies}, by operation; by the store itself if it provides
    L{ITimedStore}.
    """

    def __init__(self, store, clock) -> None:
        self._store = store
        self._clock = clock
        self.latencies: dict[str, Histogram] = {name: Histogram() for name in _TIMED}
        timed_by_store = ITimedStore.providedBy(store)
        if timed_by_store:
            store.time_calls(self._observe)
        for name in _TIMED:
            call = getattr(store, name)
            # The store's own, without a lookup through __getattr__ per call.
            setattr(self, name, call if timed_by_store else self._timed(name, call))

    def _observe(self, operation: str, seconds: float, calls: int) -> None:
        histogram = self.latencies.get(operation)
        if histogram is not None:
            histogram.observe(seconds, calls)

    def _timed(self, name: str, call):
        histogram = self.latencies[name]
        clock = self._clock

        def timed(*args):
            started = clock.seconds()
            result = call(*args)
            if result_now(result) is not NOT_YET:
                # Answered at once (the memory store): no callback to run.
                histogram.observe(clock.seconds() - started)
                return result

            def observed(outcome):
                histogram.observe(clock.seconds() - started)
                return outcome

            return result.addBoth(observed)

        return timed

    def __getattr__(self, name: str):
        return getattr(self._store, name)
