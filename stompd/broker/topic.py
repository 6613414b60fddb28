"""
Topic fan-out: every current subscriber of a matching name gets each message.
"""

from twisted.internet.defer import Deferred, DeferredList, succeed

from stompd.broker.destination import compile_pattern, is_pattern
from stompd.broker.metrics import DestinationCounts

# Client-acknowledged topic deliveries are remembered only so that their ACK
# is recognised; a subscriber that never acknowledges must not grow memory.
TOPIC_UNACKED_LIMIT = 10_000

# Names seen by publishers, cached with the patterns matching them; cleared
# when it grows past this, so that a publisher inventing names cannot grow it.
_MATCH_CACHE_LIMIT = 10_000

# Topic names whose counts are kept: names are the publishers' to invent, so
# past half of this, names idle for a sample interval are forgotten, and at
# the limit new names are not counted until some are.
TOPIC_COUNTS_LIMIT = 10_000


class TopicIndex:
    """
    Things filed under topic names or wildcard patterns, found by the name
    a message is published to: exact names in a dict, patterns matched
    against each new name once.
    """

    def __init__(self) -> None:
        self._exact: dict[str, list] = {}
        self._patterns: list = []
        self._matches: dict[str, list] = {}

    def __bool__(self) -> bool:
        return bool(self._exact or self._patterns)

    def add(self, name: str, item) -> None:
        if is_pattern(name):
            self._patterns.append((compile_pattern(name), item))
            self._matches.clear()
        else:
            self._exact.setdefault(name, []).append(item)

    def remove(self, name: str, item) -> None:
        found = self._exact.get(name)
        if found is not None and item in found:
            found.remove(item)
            if not found:
                del self._exact[name]
        else:
            self._patterns = [entry for entry in self._patterns if entry[1] != item]
            self._matches.clear()

    def names(self) -> list:
        """
        The exact names things are filed under.
        """
        return list(self._exact)

    def matching(self, name: str) -> list:
        """
        What is filed under C{name} or a pattern matching it, in the order
        filed (exact names first); a new list.
        """
        exact = self._exact.get(name, ())
        if not self._patterns:
            return [*exact]
        matched = self._matches.get(name)
        if matched is None:
            if len(self._matches) >= _MATCH_CACHE_LIMIT:
                self._matches.clear()
            matched = self._matches[name] = [item for pattern, item in self._patterns if pattern.match(name)]
        return [*exact, *matched]


class TopicExchange:
    """
    The topics of one virtual host: their subscriptions in a L{TopicIndex},
    and what was published to each name.

    @ivar counts: topic name -> L{DestinationCounts}, for the names seen
        lately (see L{TOPIC_COUNTS_LIMIT}).
    """

    def __init__(self) -> None:
        self._subscriptions = TopicIndex()
        self.counts: dict[str, DestinationCounts] = {}

    def subscribers(self, name: str) -> int:
        """
        How many subscriptions here a message to C{name} would reach.
        """
        return len(self._subscriptions.matching(name))

    def subscribed_names(self) -> list:
        """
        The topic names subscribed to here by name (not by pattern).
        """
        return self._subscriptions.names()

    def sample(self, now: float) -> None:
        """
        Update every topic's rates; past half the limit, forget the names
        nothing was published to since the last sample.
        """
        crowded = len(self.counts) > TOPIC_COUNTS_LIMIT // 2
        for name, counts in list(self.counts.items()):
            if not counts.sample(now) and crowded:
                del self.counts[name]

    def add(self, subscription) -> None:
        self._subscriptions.add(subscription.route.key, subscription)
        subscription.source = self

    def remove(self, subscription):
        """
        Take a subscriber off; its unacknowledged topic messages are dropped.
        """
        self._subscriptions.remove(subscription.route.key, subscription)
        subscription.unacked.clear()
        return succeed(None)

    def publish(self, name: str, message, here: bool = True) -> Deferred | None:
        """
        Hand C{message} to every subscriber of topic C{name}, in subscription
        order.

        @param here: whether it was published on this node (not another
            node's, passed on by a shared store), for the counts.
        @return: C{None}, or a Deferred firing when the publisher may go on,
            if a subscriber that fell behind asks it to wait
            (L{IDeliveryTarget.room}).
        """
        # A copy: a delivery may close a slow subscriber, which unsubscribes.
        subscribers = self._subscriptions.matching(name)
        counts = self.counts.get(name)
        if counts is None and len(self.counts) < TOPIC_COUNTS_LIMIT:
            counts = self.counts[name] = DestinationCounts()
        refused = 0
        rooms = None
        for subscription in subscribers:
            if subscription.read_check is not None and not subscription.read_check(message.destination):
                refused += 1
                continue
            if subscription.acks:
                unacked = subscription.unacked
                unacked[message.id] = message
                if len(unacked) > TOPIC_UNACKED_LIMIT:
                    unacked.popitem(last=False)
            target = subscription.target
            target.deliver(subscription, message)
            if not target.writable:
                room = target.room()
                if room is not None:
                    if rooms is None:
                        rooms = []
                    rooms.append(room)
        if counts is not None:
            counts.published += here
            counts.delivered += len(subscribers) - refused
        if rooms is None:
            return None
        return rooms[0] if len(rooms) == 1 else DeferredList(rooms)

    def wake(self) -> None:
        """
        A subscriber can take messages again: topics never wait for one, so
        there is nothing to send.
        """

    def settle(self, subscription, messages, action: str, visible_at=None):
        """
        An ACK or NACK of topic messages: nothing is stored, and a NACKed
        topic message is dropped, so there is nothing to do.
        """
        return None
