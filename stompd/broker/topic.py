"""
Topic fan-out: every current subscriber of a matching name gets each message.
"""

from twisted.internet.defer import succeed

from stompd.broker.destination import compile_pattern, is_pattern

# Client-acknowledged topic deliveries are remembered only so that their ACK
# is recognised; a subscriber that never acknowledges must not grow memory.
TOPIC_UNACKED_LIMIT = 10_000

# Names seen by publishers, cached with the patterns matching them; cleared
# when it grows past this, so that a publisher inventing names cannot grow it.
_MATCH_CACHE_LIMIT = 10_000


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
    The topics of one virtual host: their subscriptions in a L{TopicIndex}.
    """

    def __init__(self) -> None:
        self._subscriptions = TopicIndex()

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

    def publish(self, name: str, message) -> int:
        """
        Hand C{message} to every subscriber of topic C{name}, in subscription
        order.

        @return: how many subscribers it went to.
        """
        # A copy: a delivery may close a slow subscriber, which unsubscribes.
        subscribers = self._subscriptions.matching(name)
        for subscription in subscribers:
            if subscription.read_check is not None and not subscription.read_check(message.destination):
                continue
            if subscription.acks:
                unacked = subscription.unacked
                unacked[message.id] = message
                if len(unacked) > TOPIC_UNACKED_LIMIT:
                    unacked.popitem(last=False)
            subscription.target.deliver(subscription, message)
        return len(subscribers)

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
        return succeed(None)
